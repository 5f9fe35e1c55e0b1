"""A worker process is killed (SIGKILL: no shutdown, no nack) in the middle of a job: the real
`manage.py runworker` on the local provider, its handler blocked. Another worker gets the message
once the killed one's lease runs out, and it is processed exactly once (one success row)."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from tests.workloads.runtime.conftest import document, wait_for
from tests.workloads.runtime.processes import Process, command_env
from workloads.models import WorkOutcome, WorkResult
from workloads.providers import get_providers
from workloads.providers.local.models import LocalDelivery
from workloads.providers.specs import queue_spec
from workloads.services.ingestion import events_ingest

from . import blocking_handlers

LEASE = timedelta(seconds=10)


def _worker(**env: str) -> Process:
    return Process(
        ["runworker", blocking_handlers.SLUG],
        command_env(WORKER_HANDLER_MODULES="tests.hardening.blocking_handlers", **env),
    )


@pytest.mark.django_db(transaction=True, available_apps=["workloads", "workloads.providers.local"])
def test_a_message_of_a_killed_worker_is_redelivered_and_processed_once():
    # A 10 s timeout makes a 10 s ack deadline (Pub/Sub's minimum): the lease the dead worker
    # stops extending runs out in at most 10 s.
    workload_class = WorkloadClassFactory(
        slug=blocking_handlers.SLUG,
        timeout_tier="custom",
        timeout_seconds=LEASE.seconds,
        max_concurrency=1,
        cost_rates=None,
    )
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    [result] = events_ingest(workload_class=workload_class, events=[document(1)], now=timezone.now())

    doomed = _worker(BLOCK_HANDLER="1")
    try:
        doomed.wait_for_output("handling doc-1", timeout=30)
        doomed.popen.send_signal(signal.SIGKILL)
        assert doomed.popen.wait(timeout=10) == -signal.SIGKILL
    finally:
        doomed.kill_all()
    delivery = LocalDelivery.objects.get(message_id=int(result.message_id))
    assert delivery.attempts == 1 and delivery.acked_at is None and delivery.lease_token  # still leased
    assert delivery.visible_at > timezone.now()
    assert not WorkResult.objects.exists()
    # The lease runs out without anyone waiting for it: its 10 s pass for this row at once (the
    # lease ends at most 10 s after the dead worker's last extension, so it is over now).
    LocalDelivery.objects.filter(pk=delivery.pk).update(visible_at=delivery.visible_at - LEASE)
    assert delivery.visible_at - LEASE <= timezone.now()

    survivor = _worker()
    try:
        [row] = wait_for(lambda: list(WorkResult.objects.all()), timeout=40)
        wait_for(lambda: LocalDelivery.objects.get(pk=delivery.pk).acked_at, timeout=10)
        assert survivor.terminate() == 0, survivor.output
    finally:
        survivor.kill_all()
    assert survivor.count("handling doc-1") == 1
    assert (row.outcome, row.message_id, row.idempotency_key) == (
        WorkOutcome.SUCCEEDED,
        result.message_id,
        "acme:doc-1:1",
    )
    assert LocalDelivery.objects.get(pk=delivery.pk).attempts == 2
    assert WorkResult.objects.count() == 1
