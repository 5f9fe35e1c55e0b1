"""The real `manage.py runworker` in a child process, on the test PostgreSQL database (local
provider) and on Google's Pub/Sub emulator."""

from __future__ import annotations

import uuid

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from controlplane.roles import Role
from demo.fleet import seed_demo_fleet
from tests.factories import WorkloadClassFactory
from workloads.models import WorkloadClass, WorkOutcome, WorkResult
from workloads.providers import get_providers, set_providers
from workloads.providers.base import Providers
from workloads.providers.local.models import LocalDelivery, LocalWorkerReport
from workloads.providers.specs import queue_spec
from workloads.services.tokens import api_token_issue
from workloads.services.users import user_create

from . import slow_handlers
from .conftest import document, wait_for
from .processes import Process, command_env

LOCAL_APPS = ["workloads", "workloads.providers.local"]
DEMO_DOCUMENT = {
    "tenant_id": "acme",
    "document_id": "contract-7",
    "revision": 3,
    "content_type": "text/html",
    "content": "<h1>Terms</h1><p>All work is done.</p><h2>Scope</h2><p>Everything</p>",
}


@pytest.mark.django_db
def test_runworker_refuses_an_unknown_class_and_a_class_without_a_handler():
    with pytest.raises(CommandError, match="no workload class 'nope'"):
        call_command("runworker", "nope")
    WorkloadClassFactory(slug="no-handler-here")
    with pytest.raises(CommandError, match="No handler is registered for class 'no-handler-here'"):
        call_command("runworker", "no-handler-here")


@pytest.mark.django_db(transaction=True, available_apps=LOCAL_APPS)
def test_sigterm_finishes_in_flight_work_and_loses_no_message():
    workload_class = WorkloadClassFactory(slug=slow_handlers.SLUG, max_concurrency=2, cost_rates=None)
    queue = get_providers().queue
    spec = queue_spec(workload_class)
    queue.ensure_resources(spec)
    published = _publish(workload_class, 20)
    worker = Process(
        ["runworker", slow_handlers.SLUG],
        command_env(WORKER_HANDLER_MODULES="tests.workloads.runtime.slow_handlers", SLOW_HANDLER_SECONDS="0.4"),
    )
    try:
        wait_for(lambda: WorkResult.objects.count(), lambda n: n >= 2, timeout=30)
        assert worker.terminate() == 0, worker.output
    finally:
        worker.kill_all()
    assert "SIGTERM received; finishing in-flight work" in worker.output

    completed = set(WorkResult.objects.filter(outcome=WorkOutcome.SUCCEEDED).values_list("message_id", flat=True))
    unacked = set(
        LocalDelivery.objects.filter(subscription__name=spec.subscription, acked_at__isnull=True).values_list(
            "message_id", flat=True
        )
    )
    unacked = {str(pk) for pk in unacked}
    # Every message is either completed or still in the queue, never both, never neither...
    assert completed | unacked == set(published) and not completed & unacked
    # ...and the worker stopped mid-way: some were left for the next worker.
    assert 2 <= len(completed) < len(published)
    assert not WorkResult.objects.exclude(outcome=WorkOutcome.SUCCEEDED).exists()
    # What it had leased but not started was given back at once, not left to an expiring lease.
    assert len(queue.pull(spec, max_messages=50, timeout=0.5)) == len(unacked)
    # Its last metrics were flushed on the way out.
    assert sum(LocalWorkerReport.objects.values_list("completed", flat=True)) == len(completed)


@pytest.mark.django_db(transaction=True)
def test_an_event_posted_to_the_api_is_processed_by_runworker_on_the_local_provider():
    client = _producer("document-processing")
    workload_class = WorkloadClass.objects.get(slug="document-processing")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    response = client.post("/api/v1/classes/document-processing/events", DEMO_DOCUMENT, format="json")
    assert response.status_code == 202, response.content
    worker = Process(["runworker", "document-processing"], _demo_env())
    try:
        [row] = wait_for(lambda: list(WorkResult.objects.all()), timeout=30)
        assert worker.terminate() == 0, worker.output
    finally:
        worker.kill_all()
    assert (row.outcome, row.idempotency_key, row.records) == (WorkOutcome.SUCCEEDED, "acme:contract-7:3", 1)
    assert row.message_id == response.json()["message_id"]
    assert row.latency_seconds is not None and row.latency_seconds < 60


@pytest.mark.emulator
@pytest.mark.django_db(transaction=True)
def test_an_event_posted_to_the_api_is_processed_by_runworker_on_the_pubsub_emulator(request):
    from tests.contract.harness_gcp import TEST_BACKOFF
    from workloads.providers.gcp.pubsub import PubSubQueue
    from workloads.providers.local import LocalMetrics, LocalWorkerPools

    emulator = request.getfixturevalue("pubsub_emulator")
    publisher, subscriber, ordered_publisher = request.getfixturevalue("pubsub_clients")
    fakes = request.getfixturevalue("gcp_fakes")
    fakes.reset()
    queue = PubSubQueue(
        publisher=publisher, ordered_publisher=ordered_publisher, subscriber=subscriber, backoff=TEST_BACKOFF
    )
    set_providers(Providers(queue=queue, pools=LocalWorkerPools(), metrics=LocalMetrics(), name="gcp"))
    try:
        client = _producer("document-processing")
        workload_class = WorkloadClass.objects.get(slug="document-processing")
        # The emulator lives for the whole session: fresh resource names for this test. No backoff,
        # so the poison message goes through its five attempts at once.
        suffix = uuid.uuid4().hex[:8]
        for field in ("topic", "subscription", "dead_letter_topic", "dead_letter_subscription"):
            setattr(workload_class, field, f"{getattr(workload_class, field)}-{suffix}")
        workload_class.min_backoff_seconds = workload_class.max_backoff_seconds = 0
        workload_class.save()
        spec = queue_spec(workload_class)
        queue.ensure_resources(spec)
        poison = {**DEMO_DOCUMENT, "document_id": "poison-3"}
        response = client.post("/api/v1/classes/document-processing/events", [DEMO_DOCUMENT, poison], format="json")
        assert response.status_code == 202, response.content
        worker = Process(
            ["runworker", "document-processing"],
            _demo_env(
                CONTROLPLANE_PROVIDER="gcp",
                PUBSUB_EMULATOR_HOST=emulator.host,
                GOOGLE_CLOUD_PROJECT="worker-kit-e2e",
                CLOUD_RUN_ENDPOINT=fakes.address,
                CLOUD_MONITORING_ENDPOINT=fakes.address,
            ),
        )
        try:
            wait_for(
                lambda: set(WorkResult.objects.values_list("outcome", flat=True)),
                lambda outcomes: {WorkOutcome.SUCCEEDED, WorkOutcome.DEAD_LETTERED} <= outcomes,
                timeout=40,
            )
            assert worker.terminate() == 0, worker.output
        finally:
            worker.kill_all()
        done = WorkResult.objects.get(outcome=WorkOutcome.SUCCEEDED)
        assert (done.idempotency_key, done.records) == ("acme:contract-7:3", 1)
        dead = WorkResult.objects.get(outcome=WorkOutcome.DEAD_LETTERED)
        assert (dead.idempotency_key, dead.attempts) == ("acme:poison-3:3", workload_class.max_delivery_attempts)
        [letter] = queue.peek_dead_letters(spec, max_messages=5)
        assert letter.attributes["cp-error-type"] == "demo.handlers.DocumentCorrupt"
        assert "poison-3" in letter.attributes["cp-error-message"]
        # One line per failure, with the signature; none per success.
        assert worker.count(f"[{dead.error_signature}]") == workload_class.max_delivery_attempts
        # The worker's metrics went to Cloud Monitoring (the fake), once, at shutdown.
        assert len(fakes.monitoring.create_requests) == 1
    finally:
        set_providers(None)
        fakes.reset()


def _publish(workload_class, count: int) -> list[str]:
    from django.utils import timezone

    from workloads.services.ingestion import events_ingest

    results = events_ingest(
        workload_class=workload_class, events=[document(n) for n in range(count)], now=timezone.now()
    )
    return [result.message_id for result in results]


def _producer(slug: str) -> APIClient:
    seed_demo_fleet()
    user = user_create(actor=None, username="producer-bot", role=Role.VIEWER, password="correct-horse-battery-9")
    _token, raw = api_token_issue(actor=None, user=user, name="producer", scopes=[f"ingest:{slug}"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _demo_env(**extra: str) -> dict[str, str]:
    # Only the marked poison message fails: no random failures in a test.
    return command_env(DEMO_TRANSIENT_FAILURE_RATE="0", DEMO_POISON_RATE="0", **extra)
