"""Ingestion while Pub/Sub does not answer (the emulator behind a frozen FaultProxy).

A request never holds a web thread for the client library's whole retry budget, and never holds a
database transaction open across the publish: the claim of its idempotency key commits before the
call, and is given back when the publish fails. The request answers 503 with Retry-After within
INGESTION_PUBLISH_TIMEOUT_SECONDS (well under 10 s), and the client's retry after recovery is
accepted exactly once: one message in the subscription, one receipt for every later duplicate."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from django.db import connection, connections
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport
from rest_framework.test import APIClient

from controlplane.roles import Role
from tests.contract.fakes.proxy import FaultProxy
from tests.factories import WorkloadClassFactory
from workloads.models import IdempotencyRecord
from workloads.providers import set_providers
from workloads.providers.base import ATTR_IDEMPOTENCY_KEY, Providers
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.pubsub import PubSubQueue
from workloads.providers.local import build_local_providers
from workloads.providers.specs import queue_spec
from workloads.services.tokens import api_token_issue

pytestmark = [pytest.mark.emulator, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/classes/{slug}/events"
REQUEST_BOUND_SECONDS = 10  # the promise: no request thread waits longer
# The production retry policy (retries for 60 s), only with quicker first steps.
BACKOFF = Backoff(initial=0.05, maximum=1.0, deadline=60.0)


@pytest.fixture
def gcp_behind_proxy(pubsub_emulator):
    """(queue, proxy): the app's providers with Pub/Sub reached through a FaultProxy."""
    proxy = FaultProxy(pubsub_emulator.host)

    def channel():
        return grpc.insecure_channel(proxy.address)

    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.001),
        transport=PublisherGrpcTransport(channel=channel()),
    )
    ordered_publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
        transport=PublisherGrpcTransport(channel=channel()),
    )
    subscriber = pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel()))
    queue = PubSubQueue(
        publisher=publisher, ordered_publisher=ordered_publisher, subscriber=subscriber, backoff=BACKOFF
    )
    local = build_local_providers()
    set_providers(Providers(queue=queue, pools=local.pools, metrics=local.metrics, name="gcp"))
    try:
        yield queue, proxy
    finally:
        set_providers(None)
        proxy.thaw()
        publisher.stop()
        ordered_publisher.stop()
        subscriber.close()
        proxy.stop()


@pytest.fixture
def producer(make_user):
    user = make_user("producer-bot", Role.VIEWER)
    _token, raw = api_token_issue(actor=None, user=user, name="producer", scopes=["ingest:outage-jobs"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _post(client, key: str):
    body = {"tenant_id": "acme", "document_id": "doc-1", "revision": 1}
    return client.post(URL.format(slug="outage-jobs"), body, format="json", headers={"Idempotency-Key": key})


def _idle_in_transaction() -> list[tuple]:
    """The app's other sessions that sit inside a transaction without running anything."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, state, query FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'"
        )
        return cursor.fetchall()


def _wait_until(condition, *, timeout: float, what: str) -> None:
    give_up_at = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up_at, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_frozen_pubsub_gets_a_prompt_503_holds_no_transaction_and_the_retry_is_accepted_once(
    gcp_behind_proxy, producer, settings
):
    queue, proxy = gcp_behind_proxy
    settings.INGESTION_PUBLISH_TIMEOUT_SECONDS = 3
    workload_class = WorkloadClassFactory(slug="outage-jobs")
    spec = queue_spec(workload_class)
    queue.ensure_resources(spec)

    proxy.freeze()
    answered: dict = {}

    def send() -> None:
        started = time.monotonic()
        try:
            answered["response"] = _post(producer, "outage-1")
        finally:
            answered["seconds"] = time.monotonic() - started
            connections.close_all()

    request = threading.Thread(target=send, daemon=True)
    request.start()
    _wait_until(lambda: any(m.endswith("/Publish") for m in proxy.methods), timeout=10, what="the publish")
    # While the publish hangs, the request's session is not inside a transaction.
    assert _idle_in_transaction() == []
    request.join(timeout=REQUEST_BOUND_SECONDS + 5)
    assert not request.is_alive(), "the request is still waiting for Pub/Sub"

    response = answered["response"]
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    assert response.json()["code"] == "DEADLINE_EXCEEDED"
    assert answered["seconds"] < REQUEST_BOUND_SECONDS
    assert not IdempotencyRecord.objects.filter(key="outage-1").exists()  # the claim was given back

    proxy.thaw()
    retried = _post(producer, "outage-1")
    assert retried.status_code == 202, retried.content
    again = _post(producer, "outage-1")
    assert again.status_code == 200 and again.json()["message_id"] == retried.json()["message_id"]

    messages = queue.pull(spec, max_messages=10, timeout=2)
    # The publish that timed out may still have reached Pub/Sub (the frozen connection delivers it
    # after the thaw, as a real network may): then it is a second copy with the same idempotency
    # key, which the worker kit skips. Nothing is lost and no other key appears.
    assert {m.attributes[ATTR_IDEMPOTENCY_KEY] for m in messages} == {"outage-1"} and len(messages) <= 2
    assert retried.json()["message_id"] in {m.message_id for m in messages}
