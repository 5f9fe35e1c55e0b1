"""Smoke test of `make run`: the Procfile's processes (gunicorn, a Celery worker and beat, the local
fleet and the traffic generator) run under the supervisor on a temporary SQLite database, as `make run`
starts them, for about a minute. The API and the overview page must then show events ingested,
completed, dead-lettered and rolled up; stopping the process group must end every process."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADMIN, PASSWORD = "smoke-admin", "smoke-password-7"
# Data appears within a poll of its completion (the minute under way is polled, as `make run` does);
# the rest is margin for a loaded machine. Conditions are polled, never waited for by a fixed sleep.
DEADLINE_SECONDS = 150
# The same tick intervals `make run` uses, a little shorter where it saves waiting.
FAST_TICKS = {
    "TELEMETRY_POLL_CURRENT_MINUTE": "1",
    "TELEMETRY_POLL_INTERVAL_SECONDS": "10",
    "TELEMETRY_ALERTS_INTERVAL_SECONDS": "10",
    "SCALING_CONTROLLER_INTERVAL_SECONDS": "10",
    "SCALING_COOLDOWN_UP_SECONDS": "10",
    "DEAD_LETTER_SYNC_INTERVAL_SECONDS": "5",
    "WORKER_REPORT_INTERVAL_SECONDS": "5",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(var_dir: Path, port: int) -> dict[str, str]:
    # A clean environment: the test run's own settings (PostgreSQL, the memory broker, the test
    # settings module) must not leak into the fleet, which runs on the embedded defaults.
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")}
    return {
        **keep,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DJANGO_SETTINGS_MODULE": "controlplane.settings.base",
        "DEBUG": "1",
        "VAR_DIR": str(var_dir),
        "WEB_PORT": str(port),
        "ADMIN_USERNAME": ADMIN,
        "ADMIN_PASSWORD": PASSWORD,
        "WEB_CONCURRENCY": "1",
        "CELERY_CONCURRENCY": "1",
        "PYTHONUNBUFFERED": "1",
        **FAST_TICKS,
    }


def _processes() -> dict[int, tuple[int, str, str]]:
    """Every live process: pid -> (parent pid, start time, command line). Zombies count as ended."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), fields[19], command)
    return found


def _descendants(root: int) -> dict[int, tuple[str, str]]:
    """pid -> (start time, command line) of `root` and everything it started. The supervisor puts
    each Procfile process in a process group of its own, so its own group alone is not enough."""
    processes = _processes()
    family, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in processes:
            family[pid] = processes[pid][1:]
            todo.extend(child for child, (parent, _start, _command) in processes.items() if parent == pid)
    return family


def _still_running(family: dict[int, tuple[str, str]]) -> dict[int, str]:
    # The start time tells a survivor from a new process that got a recycled pid.
    processes = _processes()
    return {pid: command for pid, (start, command) in family.items() if pid in processes and processes[pid][1] == start}


class Client:
    """The admin's browser session (for the overview page) and bearer token (for the API)."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.logged_in = False

    def api(self, method: str, path: str, body=None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.base}/api/v1/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def page(self, path: str) -> str:
        if not self.logged_in:
            form = self.opener.open(f"{self.base}/accounts/login/", timeout=30).read().decode()
            csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
            data = urllib.parse.urlencode({"username": ADMIN, "password": PASSWORD, "csrfmiddlewaretoken": csrf})
            login = urllib.request.Request(
                f"{self.base}/accounts/login/", data=data.encode(), headers={"Referer": f"{self.base}/accounts/login/"}
            )
            self.opener.open(login, timeout=30)
            self.logged_in = True
        return self.opener.open(f"{self.base}{path}", timeout=30).read().decode()


def _start_from_the_migrated_template(var_dir: Path) -> None:
    """Under xdist the run has a migrated SQLite template (tests/template_database.py): from a copy,
    `migrate` finds nothing to apply instead of running every migration again (a new database
    migrating is tests/test_settings.py's test). The copy holds what a fresh `migrate` writes: the
    schema, the role groups, content types and permissions (the default environment is made on first
    use, from the fleet's own settings)."""
    from tests.template_database import copy_sqlite_template

    var_dir.mkdir(parents=True, exist_ok=True)
    copy_sqlite_template("contract_sqlite", var_dir / "controlplane.sqlite3")


# `manage.py` command lines run one after another in one Python process, each as the command line
# runs it (a failing one exits non-zero): five processes paid Django's start-up five times
# (measured on a quiet machine: the five commands 5.6 s and 5.3 CPU-s apart, 1.7 s and 1.7 CPU-s so).
_MANAGE_EACH = """
import json, sys
from django.core.management import execute_from_command_line
for argv in json.loads(sys.argv[1]):
    execute_from_command_line(["manage.py", *argv])
"""


def _manage(env: dict[str, str], *commands: list[str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _MANAGE_EACH, json.dumps(commands)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"manage.py {commands} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.timeout(420)
def test_the_procfile_runs_the_live_fleet_and_stops_cleanly(tmp_path):
    var_dir, port = tmp_path / "var", _free_port()
    env = _environment(var_dir, port)
    _start_from_the_migrated_template(var_dir)
    # What `make run` does before it starts the supervisor, then a token (the command's last line).
    output = _manage(
        env,
        ["migrate", "--noinput"],
        ["seed_demo"],
        ["provision"],
        ["ensure_admin"],
        ["issuetoken", ADMIN, "--name", "smoke test"],
    )
    token = output.strip().splitlines()[-1]

    log_path = tmp_path / "supervisor.log"
    with log_path.open("w") as log:
        supervisor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controlplane.supervisor",
                "--port",
                str(port),
                "--state",
                str(var_dir / "processes.json"),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the test can stop all it started
        )
    family: dict[int, tuple[str, str]] = {}
    survivors: dict[int, str] = {}
    try:
        client = Client(f"http://127.0.0.1:{port}", token)
        seen = _wait_for_the_fleet(client, supervisor, log_path)
        assert seen["ok_receipt"]["status"] == "accepted"
        assert seen["poison_receipt"]["status"] == "accepted"
        assert seen["dead_letter"]["error_type"].endswith("PolicyEngineError")
        assert seen["dead_letter"]["delivery_attempts"] == 5  # retried to the class's last attempt
        assert seen["completed"] >= 10  # the generator's events too, not only ours
        assert "Async policy evaluation" in seen["overview"]
        family = _descendants(supervisor.pid)
        commands = " | ".join(command for _start, command in family.values())
        for part in ("gunicorn", "celery -A controlplane worker", "celery -A controlplane beat", "runworker"):
            assert part in commands, commands  # each Procfile process, and the fleet's workers
    finally:
        family = family or _descendants(supervisor.pid)
        # What Ctrl-C on `make run` amounts to: the supervisor is told to stop and stops the rest.
        os.killpg(supervisor.pid, signal.SIGTERM)
        try:
            supervisor.wait(timeout=45)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 15
        while (survivors := _still_running(family)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in survivors:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=10)
    assert not survivors, f"still running after SIGTERM: {survivors}\n{_tail(log_path)}"
    assert "SIGTERM received" in log_path.read_text()  # the workers were told to finish their work


def _wait_for_the_fleet(client: Client, supervisor: subprocess.Popen, log_path: Path) -> dict:
    """Poll until every step of the data path shows through the API and the overview, or fail
    with what was still missing and the end of the fleet's log."""
    seen: dict = {}
    suffix = f"{os.getpid()}-{int(time.time())}"
    event = {"tenant_id": "smoke", "policy": "subject.level >= 2", "subject": {"level": 3}}
    deadline = time.monotonic() + DEADLINE_SECONDS
    missing = "the web server"
    while time.monotonic() < deadline:
        assert supervisor.poll() is None, f"the supervisor exited with {supervisor.returncode}:\n{_tail(log_path)}"
        try:
            # Ingested through the real API, like the traffic generator's events: one unit that
            # succeeds and one poison unit that fails on every attempt.
            for name, request_id in (("ok_receipt", f"smoke-{suffix}"), ("poison_receipt", f"poison-smoke-{suffix}")):
                if name not in seen:
                    missing = "ingestion"
                    status, body = client.api(
                        "POST", "classes/policy-evaluation/events", {**event, "request_id": request_id}
                    )
                    assert status == 202, body
                    seen[name] = body
            if "dead_letter" not in seen:
                missing = "the poison event's dead letter"
                key = seen["poison_receipt"]["idempotency_key"]
                query = urllib.parse.urlencode({"workload_class": "policy-evaluation", "idempotency_key": key})
                _status, body = client.api("GET", f"dead-letters/?{query}")
                if body.get("count"):
                    seen["dead_letter"] = body["results"][0]
            if "completed" not in seen:
                missing = "completed jobs in the minute rollups"
                since = (datetime.now(UTC) - timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
                total = 0.0
                for slug in ("policy-evaluation", "document-processing", "indexing-pipeline"):
                    _status, body = client.api("GET", f"classes/{slug}/metrics/?metric=completed&start={since}")
                    total += sum(point["v"] for point in body.get("points", []))
                if total >= 10:
                    seen["completed"] = total
            if "overview" not in seen:
                missing = "live values on the overview"
                html = client.page("/")
                if "no telemetry polled yet" not in html and "data as of" in html:
                    seen["overview"] = html
            if {"dead_letter", "completed", "overview"} <= set(seen):
                return seen
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # the web server is still starting, or busy: ask again
        time.sleep(2)
    pytest.fail(f"Within {DEADLINE_SECONDS} s the fleet did not show {missing}.\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
