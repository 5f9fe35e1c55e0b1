"""A dead-letter replay while Pub/Sub does not answer (the emulator behind a frozen FaultProxy):
the republish, a network call, runs outside any database transaction, so no session sits "idle in
transaction" holding the dead letter's row lock for as long as Pub/Sub takes; when Pub/Sub is back
the replay finishes and each message is published once."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import grpc
import pytest
from django.db import connection, connections
from django.utils import timezone
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from tests.contract.fakes.proxy import FaultProxy
from tests.workloads.deadletter_helpers import drain, event, kit_dead_letter, make_class
from workloads.models import ActionState, DeadLetter
from workloads.providers import set_providers
from workloads.providers.base import ATTR_REPLAY_OF, Providers
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.pubsub import PubSubQueue
from workloads.services import actions as engine
from workloads.services import deadletter_mirror as mirror
from workloads.services import deadletters as services
from workloads.services.deadletters import DeadLetterFilter

pytestmark = [pytest.mark.emulator, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def proxied(pubsub_emulator):
    proxy = FaultProxy(pubsub_emulator.host)

    def channel():
        return grpc.insecure_channel(proxy.address)

    publisher = pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel()))
    ordered_publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
        transport=PublisherGrpcTransport(channel=channel()),
    )
    subscriber = pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel()))
    queue = PubSubQueue(
        publisher=publisher,
        ordered_publisher=ordered_publisher,
        subscriber=subscriber,
        backoff=Backoff(initial=0.05, maximum=0.5, deadline=30.0),
    )
    set_providers(Providers(queue=queue, pools=None, metrics=None, name="gcp"))
    try:
        yield queue, proxy
    finally:
        set_providers(None)
        proxy.thaw()
        publisher.stop()
        ordered_publisher.stop()
        subscriber.close()
        proxy.stop()


def _idle_in_transaction() -> list[tuple]:
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


def test_a_replay_into_a_frozen_pubsub_holds_no_transaction_and_finishes_after(proxied):
    queue, proxy = proxied
    docs = make_class(queue, f"dl-{uuid.uuid4().hex[:10]}")
    kit_dead_letter(queue, docs, event(1))
    deadline = time.monotonic() + 20
    while not DeadLetter.objects.exists():
        assert time.monotonic() < deadline, "the dead letter was not mirrored"
        mirror.dead_letters_sync(now=timezone.now())
    action = services.replay_request(
        actor=None,
        selection=DeadLetterFilter(workload_class=docs, error_signature="sig-unavailable"),
        velocity=1000,
        enqueue=False,
        confirm_count=1,  # the selection is the whole class
    )

    proxy.freeze()
    publishes_before = sum(m.endswith("/Publish") for m in proxy.methods)
    finished: dict = {}

    def run() -> None:
        try:
            finished["action"] = engine.action_run(action_id=action.pk, sleep=lambda s: None)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion below
            finished["error"] = exc
        finally:
            connections.close_all()

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    _wait_until(
        lambda: sum(m.endswith("/Publish") for m in proxy.methods) > publishes_before, timeout=20, what="the publish"
    )
    assert _idle_in_transaction() == []  # the republish hangs, and no transaction waits on it
    proxy.thaw()
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert "error" not in finished, finished.get("error")
    assert finished["action"].state == ActionState.SUCCEEDED and finished["action"].progress_done == 1

    published = drain(queue, docs, at_least=1)  # and nothing more
    assert Counter(m.attributes[ATTR_REPLAY_OF] for m in published) == Counter(
        DeadLetter.objects.values_list("message_id", flat=True)
    )
