"""The local provider runs a pool of real worker processes end to end: `runfleet` supervising
real `runworker` children that process events, then scale to zero and watch them drain and exit."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from workloads.models import WorkOutcome, WorkResult
from workloads.providers import get_providers
from workloads.providers.local.models import LocalDelivery
from workloads.providers.specs import pool_spec, queue_spec
from workloads.services.ingestion import events_ingest

from . import slow_handlers
from .conftest import document, wait_for
from .processes import Process, command_env


@pytest.mark.django_db(transaction=True, available_apps=["workloads", "workloads.providers.local"])
@pytest.mark.timeout(60)
def test_a_local_pool_of_two_real_workers_processes_events_then_drains_when_scaled_to_zero():
    started = time.monotonic()
    workload_class = WorkloadClassFactory(slug=slow_handlers.SLUG, max_concurrency=2, cost_rates=None)
    providers = get_providers()
    providers.queue.ensure_resources(queue_spec(workload_class))
    providers.pools.ensure(pool_spec(workload_class), initial_instances=0)
    providers.pools.set_instances(pool_spec(workload_class), 2, reason="end-to-end test")

    fleet = Process(
        ["runfleet", "--poll", "0.2", "--stop-timeout", "20"],
        command_env(WORKER_HANDLER_MODULES="tests.workloads.runtime.slow_handlers", SLOW_HANDLER_SECONDS="0.4"),
    )
    try:
        fleet.wait_for_output("started (concurrency 2", times=2)  # both runworker children are up
        first = _ingest(workload_class, range(0, 12))
        rows = wait_for(
            lambda: list(WorkResult.objects.filter(outcome=WorkOutcome.SUCCEEDED)),
            lambda rows: len(rows) == 12,
            timeout=30,
        )
        assert {row.message_id for row in rows} == set(first)
        assert len({row.worker_instance for row in rows}) == 2  # both instances took work

        # Busy again, then scaled to zero: in-flight units finish, the rest waits in the queue.
        second = _ingest(workload_class, range(100, 130))
        wait_for(lambda: WorkResult.objects.count(), lambda n: n >= 14, timeout=30)
        scaled_down_at = timezone.now()
        providers.pools.set_instances(pool_spec(workload_class), 0, reason="end-to-end test: drain")
        fleet.wait_for_output("stopped (exit code 0)", times=2, timeout=30)
        assert fleet.count("did not stop") == 0  # nobody was killed

        completed = set(
            WorkResult.objects.filter(outcome=WorkOutcome.SUCCEEDED, message_id__in=second).values_list(
                "message_id", flat=True
            )
        )
        waiting = {
            str(pk)
            for pk in LocalDelivery.objects.filter(acked_at__isnull=True, lease_token="").values_list(
                "message_id", flat=True
            )
        }
        assert completed | waiting == set(second) and not completed & waiting
        assert waiting, "the drain happened after all the work was done; the test proves nothing"
        # Work in flight at the scale-down was finished, not abandoned.
        assert WorkResult.objects.filter(completed_at__gt=scaled_down_at).exists()
        assert fleet.terminate() == 0, fleet.output
    finally:
        fleet.kill_all()
    assert time.monotonic() - started < 60


def _ingest(workload_class, numbers) -> list[str]:
    results = events_ingest(workload_class=workload_class, events=[document(n) for n in numbers], now=timezone.now())
    return [result.message_id for result in results]


@pytest.mark.django_db(transaction=True, available_apps=["workloads", "workloads.providers.local"])
@pytest.mark.timeout(90)
def test_workers_of_a_class_without_a_handler_crash_loop_and_the_controller_flags_the_pool():
    """The issue's 20 minutes, compressed: a class whose workers have no handler. runfleet keeps
    restarting them; each exit is recorded with runworker's no-handler code, and the controller's
    next look after a report interval calls the pool unhealthy instead of showing it running."""
    from django.test import override_settings

    from tests.workloads.pools import fresh_backlog
    from workloads.domain.health import NO_HANDLER_EXIT_CODE
    from workloads.models import PoolControl
    from workloads.providers.local.models import LocalWorkerPool
    from workloads.services.scaling import scaling_controller_tick

    workload_class = WorkloadClassFactory(slug="no-handler-class", cost_rates=None)
    providers = get_providers()
    providers.queue.ensure_resources(queue_spec(workload_class))
    providers.pools.ensure(pool_spec(workload_class), initial_instances=1)
    fleet = Process(["runfleet", "--poll", "0.2", "--stop-timeout", "5"], command_env())
    try:
        pool = wait_for(
            lambda: LocalWorkerPool.objects.get(name=workload_class.worker_pool),
            lambda pool: pool.exits_in_row >= 2,
            timeout=60,
        )
        assert pool.last_exit_code == NO_HANDLER_EXIT_CODE, fleet.output
        assert "No handler is registered for class 'no-handler-class'" in fleet.output
        with override_settings(
            WORKER_REPORT_INTERVAL_SECONDS=10, TELEMETRY_POLL_INTERVAL_SECONDS=10, TELEMETRY_POLL_CURRENT_MINUTE=True
        ):
            now = timezone.now()
            fresh_backlog(workload_class, backlog=25, queue_age=30, now=now)
            scaling_controller_tick(now=now)  # work waits from here
            later = now + timedelta(seconds=20)
            fresh_backlog(workload_class, backlog=25, queue_age=50, now=later)
            scaling_controller_tick(now=later)
        control = PoolControl.objects.get(workload_class=workload_class)
        assert (control.health, control.health_cause) == ("unhealthy", "no_handler"), control.health_detail
        assert fleet.terminate() == 0, fleet.output
    finally:
        fleet.kill_all()
