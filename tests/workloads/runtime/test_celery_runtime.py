"""A Celery runtime observed for real: a `celery worker -E` of the demo's legacy app on a throwaway
Redis, tasks sent the way ingestion sends a Celery class's events, and the task events received by
the observer behind `manage.py observe_celery`, reported through the local Metrics port and read
back by the telemetry poll like any worker pool's figures."""

from __future__ import annotations

import json
import shutil
import sys
import threading

import pytest
from django.db import connections
from django.utils import timezone

from demo.legacy import TASK_NAME
from tests.factories import WorkloadClassFactory
from tests.hardening.test_fault_broker import ThrowawayRedis, _free_port
from tests.workloads.runtime.conftest import wait_for
from tests.workloads.runtime.processes import Process, command_env
from workloads.models import MetricRollup
from workloads.providers import get_providers
from workloads.providers.base import OutboundMessage
from workloads.providers.celery import celery_send, runtime_broker_url, runtime_celery_app
from workloads.providers.local.models import LocalWorkerReport
from workloads.runtime.celery_events import CeleryTaskObserver, observe_celery_events
from workloads.selectors.runtimes import celery_classes_by_task, class_observation
from workloads.services.polling import metrics_poll

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


@pytest.fixture
def redis_broker(tmp_path, settings):
    redis = ThrowawayRedis(_free_port(), tmp_path)
    redis.start()
    settings.RUNTIME_CELERY_BROKER_URL = redis.url
    settings.RUNTIME_CELERY_BROKER_TRANSPORT_OPTIONS = {}
    runtime_celery_app.cache_clear()
    yield redis
    runtime_celery_app.cache_clear()
    redis.stop()


@pytest.fixture
def legacy_worker(redis_broker):
    worker = Process(
        [
            "-A",
            "demo.legacy",
            "worker",
            "-E",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
            "-n",
            "legacy-test@%h",
        ],  # fmt: skip
        command_env(RUNTIME_CELERY_BROKER_URL=redis_broker.url, DEMO_LEGACY_FAILURE_RATE="0"),
        program=[sys.executable, "-m", "celery"],
    )
    try:
        worker.wait_for_output("ready", timeout=60)
        yield worker
    finally:
        worker.kill_all()


def _message(payload: dict, key: str) -> OutboundMessage:
    return OutboundMessage(data=json.dumps(payload).encode(), attributes={"cp-idempotency-key": key})


@pytest.mark.django_db(transaction=True)
def test_it_reports_a_real_celery_workers_task_events_as_the_class_figures(legacy_worker, settings):
    settings.TELEMETRY_POLL_CURRENT_MINUTE = 1  # the reports are seconds old: poll the minute under way
    legacy = WorkloadClassFactory(slug="legacy-docs", runtime="celery", runtime_resource=TASK_NAME)
    WorkloadClassFactory(slug="other-pool")  # not a Celery class: never reported
    assert celery_classes_by_task() == {TASK_NAME: "legacy-docs"}

    observer = CeleryTaskObserver(classes_by_task=celery_classes_by_task, metrics=get_providers().metrics)
    stop = threading.Event()

    def observe():
        try:
            observe_celery_events(
                app=runtime_celery_app(),
                broker_url=runtime_broker_url(),
                observer=observer,
                interval_seconds=0.5,
                should_stop=stop.is_set,
            )
        finally:
            connections.close_all()

    thread = threading.Thread(target=observe, daemon=True)
    thread.start()
    try:
        # The receiver asks the workers for a heartbeat when it starts: once one arrives it listens.
        wait_for(lambda: observer.workers, timeout=30)
        task_ids = celery_send(
            TASK_NAME,
            [_message({"work_seconds": 0.05, "n": n}, f"ok-{n}") for n in range(3)]
            + [_message({"fail": True, "n": n}, f"bad-{n}") for n in range(2)],
            deadline=10,
        )
        assert len(set(task_ids)) == 5

        def totals():
            reports = LocalWorkerReport.objects.filter(slug="legacy-docs")
            return sum(r.completed for r in reports), sum(r.failed for r in reports)

        assert wait_for(totals, lambda t: t == (3, 2), timeout=60) == (3, 2)
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()
    assert not LocalWorkerReport.objects.exclude(slug="legacy-docs").exists()
    assert observer.pending == 0

    now = timezone.now()
    metrics_poll(now=now)
    rollups = MetricRollup.objects.filter(workload_class=legacy, resolution="minute")
    assert sum(r.completed for r in rollups) == 3
    assert sum(r.failed for r in rollups) == 2
    assert sum(r.latency_count for r in rollups) == 3  # one latency per completed task, from its task-sent event
    status = {row.figure: row.status for row in class_observation(legacy, now=now)}
    assert status["completions"] == "received"
    assert status["latency"] == "received"
