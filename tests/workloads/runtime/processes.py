"""Running `manage.py` commands as real child processes against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.db import connections

ROOT = Path(__file__).resolve().parents[3]


def command_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that uses the test PostgreSQL database."""
    name = connections["default"].settings_dict["NAME"]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "info",
        **extra,
    }


class Process:
    """A `manage.py` child (or another `program`) in its own session, its output collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str], *, program: list[str] | None = None):
        self.popen = subprocess.Popen(
            [*(program or [sys.executable, "manage.py"]), *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def wait_for_output(self, text: str, *, times: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(text) < times:
            if self.popen.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"exited ({self.popen.returncode}) before printing {text!r}:\n{self.output}")
            assert time.monotonic() < deadline, f"{text!r} not printed {times}x within {timeout} s:\n{self.output}"
            time.sleep(0.05)

    def terminate(self, timeout: float = 30.0) -> int:
        self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill_all(self) -> None:
        """Teardown: SIGKILL the process, and every process it started (they have their own sessions)."""
        for pid in [*descendants(self.popen.pid), self.popen.pid]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.popen.poll() is None:
            self.popen.wait(timeout=10)
        if self.popen.stdout:
            self.popen.stdout.close()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
