"""The Celery broker is down when an operator presses a button: the request still succeeds and the
action stays pending; when the broker is back, the beat tick (`actions_resume`) sends the action
again and a real `celery worker` runs it to the end.

The broker is a throwaway `redis-server` on a free port, started and stopped by the test (never
the shared one on 6379)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.celery import app
from tests.workloads.pools import instances, pooled_class
from tests.workloads.runtime.conftest import wait_for
from tests.workloads.runtime.processes import Process, command_env
from workloads.models import Action, ActionKind, ActionState
from workloads.services.actions import PENDING_RETRY_AFTER, actions_resume

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayRedis:
    def __init__(self, port: int, folder):
        self.port, self.folder, self.process = port, folder, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.answers():
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def queue_length(self, name: str = "celery") -> int:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
            conn.sendall(f"LLEN {name}\r\n".encode())
            return int(conn.recv(32).decode().strip().lstrip(":"))


@contextmanager
def celery_broker(url: str):
    """Point this process's Celery app at `url` (and back), dropping pooled connections."""

    def reset():
        # What Celery itself does after a fork: forget the pools, the next send builds new ones.
        app._pool = None
        app.amqp._producer_pool = None

    # Celery reads CELERY_BROKER_URL from the environment before its configuration.
    previous = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = url
    reset()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["CELERY_BROKER_URL"]
        else:
            os.environ["CELERY_BROKER_URL"] = previous
        reset()


@pytest.fixture
def redis(tmp_path):
    server = ThrowawayRedis(_free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_a_button_pressed_while_the_broker_is_down_runs_when_it_returns(redis, operator, client_as, caplog):
    workload_class = pooled_class("report-build", instances=3)
    with celery_broker(redis.url):
        redis.stop()
        started = time.monotonic()
        response = client_as(operator).post(
            "/api/v1/classes/report-build/pause", {"reason": "bad deploy"}, format="json"
        )
        assert response.status_code == 202, response.content
        assert time.monotonic() - started < 20  # the failed enqueue gives up in about a second
        action = Action.objects.get(kind=ActionKind.PAUSE)
        assert (action.state, action.attempts) == (ActionState.PENDING, 0)
        assert f"could not enqueue action {action.pk}" in caplog.text
        assert instances(workload_class) == 3

        redis.start()  # an empty broker: the message sent during the outage never existed
        assert redis.queue_length() == 0
        assert actions_resume(now=timezone.now() + PENDING_RETRY_AFTER + timedelta(seconds=1)) == [action.pk]
        assert redis.queue_length() == 1

    worker = Process(
        ["-A", "controlplane", "worker", "-P", "solo", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
        command_env(CELERY_BROKER_URL=redis.url),
        program=[sys.executable, "-m", "celery"],
    )
    try:
        action = wait_for(
            lambda: Action.objects.get(pk=action.pk), lambda a: a.state == ActionState.SUCCEEDED, timeout=60
        )
        assert worker.terminate() == 0, worker.output
    finally:
        worker.kill_all()
    assert "Task workloads.tasks.action_run[" in worker.output and "succeeded" in worker.output
    assert action.attempts == 1 and action.progress_done == action.progress_total == 1
    assert instances(workload_class) == 0
    assert redis.queue_length() == 0
