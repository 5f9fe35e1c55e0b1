"""The process supervisor of `make run`: runs every Procfile line and keeps it running.

    python -m controlplane.supervisor [--procfile Procfile] [--port 8000] [--state FILE] [-c worker=2]

honcho, which `make run` used before, stops every process as soon as one exits: one crash of the
Celery worker took the whole demo down. Here a process that exits on its own is logged, recorded
in the state file (which the pages read: controlplane/processes.py) and started again after a
backoff (1 s, doubling to 30 s; back to 1 s once it has run a minute). SIGINT (Ctrl-C) or SIGTERM
stops everything: each child gets SIGTERM, then, once it has ended, whatever is left of its process
group (a child's own children) too, all within STOP_GRACE_SECONDS; then SIGKILL.

Plain Python, no Django: it must keep running whatever the application does.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.processes import MAX_EXITS_KEPT, write_state

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
HEALTHY_AFTER_SECONDS = 60.0  # a child that ran this long before exiting starts again after FIRST_BACKOFF
STOP_GRACE_SECONDS = 15.0  # the Celery worker and runworker finish in-flight work on SIGTERM
TICK_SECONDS = 0.2
_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def parse_procfile(text: str) -> list[tuple[str, str]]:
    """(name, command) of each `name: command` line."""
    entries = []
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match and not line.lstrip().startswith("#"):
            entries.append((match.group(1), match.group(2)))
    return entries


@dataclass
class Child:
    name: str
    command: str
    env: dict[str, str]
    popen: subprocess.Popen | None = None
    started_at: float = 0.0
    next_start: float = 0.0
    backoff: float = FIRST_BACKOFF_SECONDS
    restarts: int = 0
    exits: list[dict] = field(default_factory=list)

    def start(self, output_lock: threading.Lock) -> None:
        self.popen = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {self.command}"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: stopped as a whole, never by the terminal's Ctrl-C
        )
        self.started_at = time.time()
        _log(output_lock, "supervisor", f"{self.name} started with pid {self.popen.pid}")
        threading.Thread(target=self._relay, args=(self.popen, output_lock), daemon=True).start()

    def _relay(self, popen: subprocess.Popen, output_lock: threading.Lock) -> None:
        for line in popen.stdout:
            _log(output_lock, self.name, line.rstrip("\n"))

    def as_state(self) -> dict:
        running = self.popen is not None and self.popen.poll() is None
        return {
            "command": self.command,
            "pid": self.popen.pid if running else None,
            "started_at": self.started_at if running else None,
            "restarts": self.restarts,
            "exits": self.exits[-MAX_EXITS_KEPT:],
        }


def _log(lock: threading.Lock, name: str, text: str) -> None:
    with lock:
        sys.stdout.write(f"{time.strftime('%H:%M:%S')} {name:<12} | {text}\n")
        sys.stdout.flush()


class Supervisor:
    def __init__(self, children: list[Child], *, state_file: Path | None):
        self.children = children
        self.state_file = state_file
        self.started_at = time.time()
        self._stop = threading.Event()
        self._output = threading.Lock()

    def request_stop(self, signum, _frame) -> None:
        if not self._stop.is_set():
            _log(self._output, "supervisor", f"{signal.Signals(signum).name} received; stopping every process")
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            changed = False
            for child in self.children:
                if child.popen is None:
                    if now >= child.next_start:
                        child.start(self._output)
                        changed = True
                elif child.popen.poll() is not None:
                    self._exited(child, now)
                    changed = True
            if changed:
                self._save()
            self._stop.wait(TICK_SECONDS)
        self._stop_all()
        self._save()

    def _exited(self, child: Child, now: float) -> None:
        code = child.popen.returncode
        uptime = now - child.started_at
        child.backoff = FIRST_BACKOFF_SECONDS if uptime >= HEALTHY_AFTER_SECONDS else child.backoff
        child.exits.append({"at": now, "code": code, "uptime_seconds": round(uptime, 1)})
        del child.exits[:-MAX_EXITS_KEPT]
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        _log(
            self._output,
            "supervisor",
            f"UNEXPECTED EXIT: {child.name} (pid {child.popen.pid}) {how} after {uptime:.1f} s; "
            f"restarting in {child.backoff:g} s",
        )
        child.popen = None
        child.restarts += 1
        child.next_start = now + child.backoff
        child.backoff = min(MAX_BACKOFF_SECONDS, child.backoff * 2)

    def _stop_all(self) -> None:
        running = [c for c in self.children if c.popen is not None and c.popen.poll() is None]
        # The child itself first: gunicorn, the Celery worker and runfleet stop what they started in
        # their own way. Signalled with them, a Celery worker's pool processes died with the task
        # under way, and the worker then waited 10 s (Celery's worker_lost_wait) before it exited.
        for child in running:
            child.popen.send_signal(signal.SIGTERM)
        give_up_at = time.monotonic() + STOP_GRACE_SECONDS
        for child in running:
            try:
                child.popen.wait(timeout=max(0.0, give_up_at - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log(self._output, "supervisor", f"{child.name} did not stop in {STOP_GRACE_SECONDS:g} s; killing it")
        # Then what is left of each group (a shell's children, anything a child left behind).
        for child in running:
            _signal_group(child.popen, signal.SIGTERM)
        while any(_group_alive(child.popen) for child in running) and time.monotonic() < give_up_at:
            time.sleep(TICK_SECONDS / 4)
        for child in running:
            _signal_group(child.popen, signal.SIGKILL)  # stragglers of its group, if any
            if child.popen.poll() is None:
                child.popen.wait(timeout=5)

    def _save(self) -> None:
        if self.state_file is None:
            return
        write_state(
            self.state_file,
            {
                "supervisor_pid": os.getpid(),
                "started_at": self.started_at,
                "stopped": self._stop.is_set(),
                "processes": {child.name: child.as_state() for child in self.children},
            },
        )


def _signal_group(popen: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(popen.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(popen: subprocess.Popen) -> bool:
    try:
        os.killpg(popen.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def build_children(entries: list[tuple[str, str]], *, port: int | None, concurrency: dict[str, int]) -> list[Child]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")  # children write to a pipe: lines in the log as they happen
    if port is not None:
        env["PORT"] = str(port)
    children = []
    for name, command in entries:
        count = concurrency.get(name, 1)
        for number in range(1, count + 1):
            children.append(Child(name if count == 1 else f"{name}.{number}", command, env))
    return children


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--procfile", default="Procfile")
    parser.add_argument("--port", type=int, default=None, help="PORT given to every process (the web binds it)")
    parser.add_argument("--state", type=Path, default=None, help="where to record processes and their exits")
    parser.add_argument(
        "-c",
        "--concurrency",
        action="append",
        default=[],
        help="NAME=N: run N copies of a Procfile process (comma-separated or repeated), as honcho's -c",
    )
    args = parser.parse_args(argv)
    concurrency = {}
    for item in ",".join(args.concurrency).split(","):
        if item.strip():
            name, _, count = item.partition("=")
            concurrency[name.strip()] = int(count)
    entries = parse_procfile(Path(args.procfile).read_text())
    if not entries:
        parser.error(f"{args.procfile} has no `name: command` lines")
    supervisor = Supervisor(build_children(entries, port=args.port, concurrency=concurrency), state_file=args.state)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, supervisor.request_stop)
    _log(supervisor._output, "supervisor", f"running {', '.join(shlex.quote(c.name) for c in supervisor.children)}")
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
