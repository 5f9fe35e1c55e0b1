"""`make run`'s supervisor (controlplane/supervisor.py) with real processes: a process that exits
is reported and restarted while the others keep running (honcho stopped them all), and SIGTERM
or Ctrl-C still stops everything, children's children included. The banner every page shows
reads the supervisor's state file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controlplane.processes import recent_exits, write_state

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _wait_until(condition, *, timeout: float, what: str):
    give_up_at = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < give_up_at, f"timed out waiting for {what}"
        time.sleep(0.05)


def _state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _start(tmp_path: Path, procfile: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    (tmp_path / "Procfile").write_text(procfile)
    state = tmp_path / "processes.json"
    supervisor = subprocess.Popen(
        [PY, "-m", "controlplane.supervisor", "--procfile", str(tmp_path / "Procfile"), "--state", str(state)],
        cwd=ROOT,
        env=env,
        stdout=open(tmp_path / "log", "w"),  # noqa: SIM115  (closed with the process)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return supervisor, state


@pytest.fixture
def stop_after():
    started: list[subprocess.Popen] = []
    yield started.append
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_an_exiting_process_is_restarted_and_reported_and_the_others_keep_running(tmp_path, stop_after):
    procfile = (
        f"steady: {PY} -c 'import time; time.sleep(120)'\n"
        f"crashy: {PY} -c 'import sys, time; time.sleep(0.2); sys.exit(3)'\n"
    )
    supervisor, state_file = _start(tmp_path, procfile)
    stop_after(supervisor)
    steady_pid = _wait_until(
        lambda: _state(state_file).get("processes", {}).get("steady", {}).get("pid"), timeout=20, what="steady"
    )
    crashy = _wait_until(
        lambda: (p := _state(state_file).get("processes", {}).get("crashy", {})) and len(p["exits"]) >= 2 and p,
        timeout=30,
        what="two exits of crashy",
    )
    assert [e["code"] for e in crashy["exits"][:2]] == [3, 3] and crashy["restarts"] >= 2
    assert supervisor.poll() is None  # the supervisor and the steady process are still there
    assert _state(state_file)["processes"]["steady"]["pid"] == steady_pid and _alive(steady_pid)
    log = (tmp_path / "log").read_text()
    assert "UNEXPECTED EXIT: crashy" in log and "exited with code 3" in log
    assert [e["name"] for e in recent_exits(state_file)][:2] == ["crashy", "crashy"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_every_process_and_their_children(tmp_path, stop_after, signum):
    # A child with a child of its own (as gunicorn and Celery have), and a plain one.
    grandchild = f"{PY} -c 'import time; time.sleep(120)'"
    procfile = f"parent: /bin/sh -c \"{grandchild} & wait\"\nsingle: {PY} -c 'import time; time.sleep(120)'\n"
    supervisor, state_file = _start(tmp_path, procfile)
    stop_after(supervisor)
    pids = _wait_until(
        lambda: (
            (p := _state(state_file).get("processes", {}))
            and all(v.get("pid") for v in p.values())
            and [v["pid"] for v in p.values()]
        ),
        timeout=20,
        what="both processes",
    )
    family = pids + _wait_until(lambda: _children_of(pids[0]), timeout=10, what="the grandchild")
    os.kill(supervisor.pid, signum)
    assert supervisor.wait(timeout=30) == 0
    _wait_until(lambda: not any(_alive(pid) for pid in family), timeout=10, what="every process to end")
    assert _state(state_file)["stopped"] is True
    assert all(e == [] for e in (p["exits"] for p in _state(state_file)["processes"].values()))  # none unexpected


def test_a_celery_task_under_way_finishes_when_everything_stops(tmp_path, stop_after):
    """The stop signal goes to the Celery worker itself before the rest of its process group: the
    worker lets its pool finish the task under way. Signalled with it, the pool process died with
    the task, and the worker waited 10 s for the lost result before it exited."""
    var_dir = tmp_path / "var"
    for folder in ("queue", "processed", "control"):
        (var_dir / "runtime-celery" / folder).mkdir(parents=True)
    # The embedded broker of `make run` (the test run's own is in memory, in this process only).
    env = {**os.environ, "VAR_DIR": str(var_dir), "RUNTIME_CELERY_BROKER_URL": "filesystem://"}
    celery = Path(PY).parent / "celery"
    procfile = f"legacy: {celery} -A demo.legacy worker --concurrency 1 --without-gossip --without-mingle -l INFO\n"
    supervisor, _state_file = _start(tmp_path, procfile, env)
    stop_after(supervisor)
    log = tmp_path / "log"
    _wait_until(lambda: " ready." in log.read_text(), timeout=60, what="the Celery worker")
    # "fail": False turns off the demo task's random crashes (demo/legacy.py): the task must succeed.
    send = "from demo.legacy import process_document; process_document.delay({'work_seconds': 2, 'fail': False})"
    subprocess.run([PY, "-c", send], cwd=ROOT, env=env, check=True, timeout=60)
    _wait_until(lambda: "Task legacy.process_document" in log.read_text(), timeout=30, what="the task")

    os.kill(supervisor.pid, signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    text = log.read_text()
    assert "succeeded" in text and "WorkerLostError" not in text, text


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_every_page_shows_recent_unexpected_exits(admin_user, client, settings, tmp_path):
    settings.SUPERVISOR_STATE_FILE = tmp_path / "processes.json"
    write_state(
        settings.SUPERVISOR_STATE_FILE,
        {"processes": {"worker": {"pid": 4242, "restarts": 1, "exits": [{"at": time.time() - 120, "code": 1}]}}},
    )
    client.force_login(admin_user)
    page = client.get("/").content.decode()
    assert "exited unexpectedly" in page and "<strong>worker</strong> exited with code 1 2 min ago" in page
    settings.SUPERVISOR_STATE_FILE = tmp_path / "absent.json"
    assert "exited unexpectedly" not in client.get("/").content.decode()
