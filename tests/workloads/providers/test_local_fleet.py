"""runfleet with real child processes: a stand-in worker that records its pid, and on SIGTERM
finishes a bit of "in-flight work" before saying it stopped."""

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connections

from tests.workloads.providers.conftest import LOCAL_APPS, PROJECT
from workloads.providers.base import PoolSpec
from workloads.providers.local import LocalWorkerPools
from workloads.providers.local.fleet import fleet_run

ROOT = Path(__file__).resolve().parents[3]

WORKER = """
import os, signal, sys, time
from pathlib import Path
folder, slug = Path(sys.argv[1]), sys.argv[2]
me = folder / f"{slug}-{os.getpid()}"

def stop(*_):
    time.sleep(0.2)  # in-flight work finishes first
    me.with_suffix(".down").write_text("")
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
# Written under another name, then renamed: the test reads the file as soon as it exists.
me.with_suffix(".tmp").write_text(os.environ["CONTROLPLANE_WORKER_INSTANCE"])
me.with_suffix(".tmp").rename(me.with_suffix(".up"))
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def worker_command(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return [sys.executable, str(script), str(tmp_path), "{slug}"]


def _is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited; only its supervisor has not reaped it yet


def _started(folder: Path, slug: str) -> set[int]:
    return {int(path.stem.rsplit("-", 1)[1]) for path in folder.glob(f"{slug}-*.up")}


def _running(folder: Path, slug: str) -> set[int]:
    return {pid for pid in _started(folder, slug) if _is_running(pid)}


def _wait_for(read, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if predicate(value):
            return value
        assert time.monotonic() < deadline, f"timed out; last value {value!r}"
        time.sleep(0.05)


def _spec(slug):
    return PoolSpec(slug=slug, worker_pool=f"projects/{PROJECT}/locations/local/workerPools/{slug}")


@pytest.mark.django_db(transaction=True, available_apps=LOCAL_APPS)
def test_runfleet_follows_the_instance_count_and_restarts_a_crashed_worker(tmp_path, worker_command):
    pools = LocalWorkerPools()
    pools.ensure(_spec("ocr"), initial_instances=2)
    pools.ensure(_spec("idle"), initial_instances=0)
    stop = threading.Event()

    def supervise():
        try:
            fleet_run(stop=stop, command=worker_command, poll_seconds=0.1, stop_timeout=10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=supervise)
    thread.start()
    try:
        first = _wait_for(lambda: _running(tmp_path, "ocr"), lambda pids: len(pids) == 2)
        instances = {(tmp_path / f"ocr-{pid}.up").read_text() for pid in first}
        assert len(instances) == 2 and all(i.startswith("ocr-") for i in instances)

        pools.set_instances(_spec("ocr"), 1, reason="scale down")
        [survivor] = _wait_for(lambda: _running(tmp_path, "ocr"), lambda pids: len(pids) == 1)
        [stopped] = first - {survivor}
        assert (tmp_path / f"ocr-{stopped}.down").exists()  # stopped gracefully, not killed

        os.kill(survivor, signal.SIGKILL)  # a crash
        [replacement] = _wait_for(
            lambda: _running(tmp_path, "ocr"), lambda pids: len(pids) == 1 and survivor not in pids
        )

        pools.set_instances(_spec("ocr"), 3, reason="scale up")
        _wait_for(lambda: _running(tmp_path, "ocr"), lambda pids: len(pids) == 3 and replacement in pids)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    started = _started(tmp_path, "ocr")
    assert len(started) == 5 and not _started(tmp_path, "idle")
    assert not any(_is_running(pid) for pid in started)
    # Every worker but the one killed was stopped with SIGTERM and finished its work.
    assert {pid for pid in started if (tmp_path / f"ocr-{pid}.down").exists()} == started - {survivor}


@pytest.mark.django_db(transaction=True, available_apps=LOCAL_APPS)
def test_the_runfleet_command_stops_its_workers_cleanly_on_sigterm(tmp_path, worker_command):
    LocalWorkerPools().ensure(_spec("index"), initial_instances=1)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connections['default'].settings_dict['NAME']}",
        "LOCAL_FLEET_WORKER_COMMAND": shlex.join(worker_command),
    }
    fleet = subprocess.Popen(
        [sys.executable, "manage.py", "runfleet", "--poll", "0.2", "--stop-timeout", "10"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        [worker] = _wait_for(lambda: _running(tmp_path, "index"), lambda pids: len(pids) == 1, timeout=60)
        fleet.send_signal(signal.SIGTERM)
        output, _ = fleet.communicate(timeout=30)
    finally:
        if fleet.poll() is None:
            fleet.kill()
            fleet.wait()
    assert fleet.returncode == 0, output
    assert (tmp_path / f"index-{worker}.down").exists()
    assert not _is_running(worker)
    assert "Fleet supervisor stopped" in output
