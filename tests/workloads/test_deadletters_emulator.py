"""Dead letters on Google's Pub/Sub emulator through the real adapter: the mirror sync, a replay
round trip (and the row it updates when the replay fails again), crash-and-resume, a chunk's
publish overlapping the previous chunk's records, and seek to a snapshot. Pub/Sub cannot publish
inside a database transaction: the publish runs outside one and the row is marked replayed right
after, so a crash after that mark publishes nothing twice."""

import threading
import time
import uuid
from collections import Counter

import pytest
from django.utils import timezone

from tests.workloads.deadletter_helpers import drain, event, exhaust, kit_dead_letter, make_class
from workloads.errors import ApplicationError
from workloads.models import Action, ActionState, DeadLetter, DeadLetterStatus
from workloads.providers import set_providers
from workloads.providers.base import ATTR_IDEMPOTENCY_KEY, ATTR_REPLAY_OF, OutboundMessage, Providers
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.pubsub import PubSubQueue
from workloads.providers.specs import queue_spec
from workloads.services import actions as engine
from workloads.services import deadletter_mirror as mirror
from workloads.services import deadletters as services
from workloads.services import replay_run
from workloads.services.deadletters import DeadLetterFilter
from workloads.services.subscriptions import snapshot_create_request, subscription_seek_request

pytestmark = pytest.mark.emulator

FAST = Backoff(initial=0.05, maximum=0.5, deadline=10.0)


@pytest.fixture
def queue(db, pubsub_clients):
    publisher, subscriber, ordered_publisher = pubsub_clients
    queue = PubSubQueue(publisher=publisher, ordered_publisher=ordered_publisher, subscriber=subscriber, backoff=FAST)
    set_providers(Providers(queue=queue, pools=None, metrics=None, name="gcp"))
    yield queue
    set_providers(None)


@pytest.fixture
def docs(queue):
    return make_class(queue, f"dl-{uuid.uuid4().hex[:10]}")


def _sync_until(rows: int, timeout: float = 20.0) -> None:
    """Pub/Sub forwards dead letters asynchronously and a pull may return part of what is there."""
    deadline = time.monotonic() + timeout
    while DeadLetter.objects.count() < rows:
        assert time.monotonic() < deadline, f"only {DeadLetter.objects.count()} of {rows} dead letters mirrored"
        mirror.dead_letters_sync(now=timezone.now())


def _replay(docs, **selection):
    chosen = DeadLetterFilter(workload_class=docs, **selection)
    confirmed = services.replay_preview(selection=chosen).replayable  # as an operator who confirmed the count
    return services.replay_request(actor=None, selection=chosen, velocity=1000, enqueue=False, confirm_count=confirmed)


def test_the_sync_mirrors_kit_and_backstop_dead_letters_then_acks_them(queue, docs):
    spec = queue_spec(docs)
    kit_id = kit_dead_letter(queue, docs, event(1), attempts=2)
    queue.publish(spec, [OutboundMessage(b'{"tenant_id": "acme"}', {ATTR_IDEMPOTENCY_KEY: "backstop-1"})])
    exhaust(queue, docs)
    _sync_until(2)
    kit = DeadLetter.objects.get(message_id=kit_id)
    assert (kit.error_type, kit.error_signature, kit.delivery_attempts) == ("Unavailable", "sig-unavailable", 2)
    backstop = DeadLetter.objects.exclude(message_id=kit_id).get()
    assert backstop.error_type == mirror.BACKSTOP_ERROR_TYPE and backstop.idempotency_key == "backstop-1"
    assert backstop.delivery_attempts == spec.max_delivery_attempts
    assert backstop.payload == {"tenant_id": "acme"}
    assert queue.peek_dead_letters(spec, max_messages=10) == []  # acked there: the mirror has them


def test_a_replay_round_trip_and_a_second_failure_update_one_row(queue, docs):
    first = kit_dead_letter(queue, docs, event(1))
    _sync_until(1)
    row = DeadLetter.objects.get()
    done = engine.action_run(action_id=_replay(docs, ids=(row.pk,)).pk, sleep=lambda s: None)
    assert done.state == ActionState.SUCCEEDED
    [replayed] = drain(queue, docs, at_least=1)
    assert replayed.attributes[ATTR_REPLAY_OF] == first and replayed.attributes["cp-replay-count"] == "1"
    assert replayed.attributes[ATTR_IDEMPOTENCY_KEY] == row.idempotency_key
    assert "cp-error-type" not in replayed.attributes
    row.refresh_from_db()
    assert row.status == DeadLetterStatus.REPLAYED and row.replayed_message_id == replayed.message_id
    # The replayed message fails again; the kit's dead-letter copy keeps its attributes.
    kit_dead_letter(queue, docs, event(1), error_type="Timeout", signature="sig-timeout", extra=replayed.attributes)
    deadline = time.monotonic() + 20
    while DeadLetter.objects.get().dead_letter_count < 2:
        assert time.monotonic() < deadline
        mirror.dead_letters_sync(now=timezone.now())
    row.refresh_from_db()
    assert DeadLetter.objects.count() == 1
    assert (row.status, row.replay_count, row.error_type) == (DeadLetterStatus.NEW, 1, "Timeout")


class Crash(replay_run.ReplayHandler):
    """Kills the worker in its second chunk (of two messages), before or after Pub/Sub accepted
    that chunk's messages and their rows were marked."""

    after_publish = False
    calls = 0

    def run_steps(self, action, steps):
        Crash.calls += 1
        if Crash.calls == 2 and not Crash.after_publish:
            raise SystemExit
        outcomes = super().run_steps(action, steps)
        if Crash.calls == 2:
            raise SystemExit
        return outcomes


@pytest.fixture
def crash(settings):
    settings.REPLAY_CHUNK_SIZE = 2
    original = engine.handler_for("replay")
    Crash.calls = 0
    engine.register_handler(Crash())
    yield Crash
    engine.register_handler(original)


def _crash_and_resume(queue, docs):
    for n in range(5):
        kit_dead_letter(queue, docs, event(n))
    _sync_until(5)
    action = _replay(docs, error_signature="sig-unavailable")
    with pytest.raises(SystemExit):
        engine.action_run(action_id=action.pk, sleep=lambda s: None)
    Action.objects.filter(pk=action.pk).update(heartbeat_at=timezone.now() - engine.STALE_AFTER * 2)
    done = engine.action_run(action_id=action.pk, sleep=lambda s: None)
    assert done.state == ActionState.SUCCEEDED and done.progress_done == 5 and done.attempts == 2
    return Counter(m.attributes[ATTR_REPLAY_OF] for m in drain(queue, docs, at_least=5))


def test_a_crash_between_steps_then_resume_publishes_each_message_once(queue, docs, crash):
    published = _crash_and_resume(queue, docs)
    assert sorted(published) == sorted(DeadLetter.objects.values_list("message_id", flat=True))
    assert set(published.values()) == {1}


def test_a_crash_after_a_step_marked_its_row_publishes_each_message_once(queue, docs, crash):
    # The publish runs outside any transaction and the rows are marked replayed (by this action) in
    # a transaction of its own right after: the resumed action finds those steps done, publishes
    # nothing again. (Only a crash between the publish and the mark would duplicate that chunk.)
    crash.after_publish = True
    published = _crash_and_resume(queue, docs)
    assert len(published) == 5 and set(published.values()) == {1}


def test_the_previous_chunks_records_are_written_while_a_chunk_is_in_flight(queue, docs, settings, monkeypatch):
    # The publish waits on its own thread, and the previous chunk's step records are written
    # meanwhile (`overlap_records`); each message is still published once.
    settings.REPLAY_CHUNK_SIZE = 2
    for n in range(5):
        kit_dead_letter(queue, docs, event(n))
    _sync_until(5)
    action = _replay(docs, error_signature="sig-unavailable")

    written = threading.Event()
    seen = []  # per publish: its thread, and the progress the previous chunk's records had made by its end
    real_write = replay_run.write_held_records
    real_republish = queue.republish

    def write_held_records():
        real_write()
        written.set()

    def republish(spec, messages, **kwargs):
        # In flight until the records are written: were the two run one after the other, this
        # would wait its 10 s out and find nothing written.
        ids = real_republish(spec, messages, **kwargs)
        records_written = written.wait(timeout=10)
        written.clear()
        seen.append((threading.current_thread() is threading.main_thread(), records_written))
        return ids

    monkeypatch.setattr(replay_run, "write_held_records", write_held_records)
    monkeypatch.setattr(queue, "republish", republish)
    done = engine.action_run(action_id=action.pk, sleep=lambda s: None)

    assert done.state == ActionState.SUCCEEDED and (done.progress_done, done.progress_total) == (5, 5)
    assert seen == [(False, True)] * 3  # three chunks, each published off the main thread meanwhile
    assert all(step.state == "done" and step.result["message_id"] for step in done.steps.all())
    published = [m.attributes[ATTR_REPLAY_OF] for m in drain(queue, docs, at_least=5)]
    assert sorted(published) == sorted(DeadLetter.objects.values_list("message_id", flat=True))
    assert DeadLetter.objects.filter(status=DeadLetterStatus.REPLAYED, replay_action=done).count() == 5
    assert Action.objects.get(pk=done.pk).progress_done == 5


def test_a_snapshot_and_a_seek_back_to_it(queue, docs, operator):
    spec = queue_spec(docs)
    queue.publish(spec, [OutboundMessage(b"pending-at-snapshot")])
    snapshot = snapshot_create_request(actor=operator, workload_class=docs, name=f"snap-{docs.slug}", enqueue=False)
    assert engine.action_run(action_id=snapshot.pk).state == ActionState.SUCCEEDED
    queue.publish(spec, [OutboundMessage(b"after-deploy")])
    assert len(drain(queue, docs, at_least=2)) == 2
    seek = subscription_seek_request(
        actor=operator, workload_class=docs, snapshot=f"snap-{docs.slug}", confirm=True, enqueue=False
    )
    assert engine.action_run(action_id=seek.pk).state == ActionState.SUCCEEDED
    assert sorted(m.data for m in drain(queue, docs, at_least=2)) == [b"after-deploy", b"pending-at-snapshot"]


@pytest.fixture
def proxied(db, pubsub_emulator):
    """(queue, proxy): the adapter reaching the emulator through a proxy that can fail calls, with
    a short publish timeout so a sustained outage surfaces quickly."""
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    from tests.contract.fakes.proxy import FaultProxy

    proxy = FaultProxy(pubsub_emulator.host)
    # As in production (workloads.providers.gcp.pubsub_clients): keyless messages go through a
    # publisher without message ordering, whose retries end at our deadline.
    publisher = pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(proxy.address)),
    )
    ordered_publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(proxy.address)),
    )
    subscriber = pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(proxy.address))
    )
    queue = PubSubQueue(
        publisher=publisher,
        ordered_publisher=ordered_publisher,
        subscriber=subscriber,
        backoff=Backoff(0.05, 0.2, 1.0),
    )
    set_providers(Providers(queue=queue, pools=None, metrics=None, name="gcp"))
    yield queue, proxy
    set_providers(None)
    publisher.stop()
    ordered_publisher.stop()
    subscriber.close()
    proxy.stop()


def test_an_outage_gives_the_replay_back_for_a_retry_that_finishes_it(proxied):
    """During an outage the publish fails once its bounded retries are spent, the engine gives the
    action back as pending, and the retry after the outage finishes the replay: each message is
    published exactly once (no background retry of the library lands a late second copy)."""
    queue, proxy = proxied
    docs = make_class(queue, f"dl-{uuid.uuid4().hex[:10]}")
    for n in range(2):
        kit_dead_letter(queue, docs, event(n))
    _sync_until(2)
    action = _replay(docs, error_signature="sig-unavailable")
    proxy.fail_next("UNAVAILABLE", 1000, method="Publish")
    with pytest.raises(services.ProviderError) as outage:
        engine.action_run(action_id=action.pk, sleep=lambda s: None)
    assert not outage.value.permanent
    action.refresh_from_db()
    assert action.state == ActionState.PENDING and "transient" in action.error and action.progress_done == 0
    assert DeadLetter.objects.filter(status=DeadLetterStatus.NEW).count() == 2
    proxy.faults.reset()
    done = engine.action_run(action_id=action.pk, sleep=lambda s: None)
    assert done.state == ActionState.SUCCEEDED and done.error == "" and done.progress_done == 2
    published = drain(queue, docs, at_least=2)
    assert len(published) == 2
    assert Counter(m.attributes[ATTR_REPLAY_OF] for m in published) == Counter(
        DeadLetter.objects.values_list("message_id", flat=True)
    )


def test_a_deleted_topic_fails_each_message_with_a_readable_reason(queue, docs, pubsub_clients):
    kit_dead_letter(queue, docs, event(1))
    _sync_until(1)
    pubsub_clients[0].delete_topic(request={"topic": docs.topic})
    done = engine.action_run(action_id=_replay(docs, error_signature="sig-unavailable").pk, sleep=lambda s: None)
    assert done.state == ActionState.FAILED
    assert "1 of 1 failed" in done.error and docs.topic in done.error
    assert DeadLetter.objects.get().status == DeadLetterStatus.NEW


def test_a_seek_to_an_unknown_snapshot_is_refused_at_once_on_pubsub(queue, docs, operator):
    queue.create_snapshot(queue_spec(docs), f"{docs.slug}-kept")
    with pytest.raises(ApplicationError) as refused:
        subscription_seek_request(actor=operator, workload_class=docs, snapshot="never-taken", confirm=True)
    assert refused.value.code == "unknown_snapshot" and refused.value.extra["snapshots"] == [f"{docs.slug}-kept"]
    assert not Action.objects.filter(kind="seek").exists()


def test_a_snapshot_deleted_after_the_seek_was_requested_fails_it_readably(queue, docs, operator):
    taken = queue.create_snapshot(queue_spec(docs), f"{docs.slug}-gone")
    seek = subscription_seek_request(
        actor=operator, workload_class=docs, snapshot=f"{docs.slug}-gone", confirm=True, enqueue=False
    )
    queue._subscriber.delete_snapshot(request={"snapshot": taken.name})
    done = engine.action_run(action_id=seek.pk)
    assert done.state == ActionState.FAILED and "1 of 1 failed" in done.error
    assert "Snapshot does not exist" in done.error


def test_the_sync_reads_subscriptions_in_parallel_up_to_the_bound(queue, settings):
    """An empty peek waits on Pub/Sub (about 1 s on the emulator): read one at a time, 12 classes
    took 12 of those waits. The reads overlap, never more than DEAD_LETTER_SYNC_CONCURRENCY."""
    import threading

    settings.DEAD_LETTER_SYNC_CONCURRENCY = 4
    classes = [make_class(queue, f"par-{uuid.uuid4().hex[:8]}") for _ in range(12)]
    kit_dead_letter(queue, classes[5], event(1))
    lock, state = threading.Lock(), {"now": 0, "max": 0, "threads": set()}
    peek = queue.peek_dead_letters

    def counting_peek(spec, *, max_messages):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            state["threads"].add(threading.get_ident())
        try:
            return peek(spec, max_messages=max_messages)
        finally:
            with lock:
                state["now"] -= 1

    queue.peek_dead_letters = counting_peek
    try:
        deadline = time.monotonic() + 20
        counts = mirror.dead_letters_sync(now=timezone.now(), workload_classes=classes)
        while DeadLetter.objects.count() < 1 and time.monotonic() < deadline:
            counts = mirror.dead_letters_sync(now=timezone.now(), workload_classes=[classes[5]])
    finally:
        del queue.peek_dead_letters
    assert state["max"] == 4 and len(state["threads"]) == 4
    assert DeadLetter.objects.get().workload_class == classes[5]
    assert set(counts) <= {wc.slug for wc in classes}


def test_a_seek_past_the_dedup_window_on_pubsub_needs_accept_rerun_and_redelivers(queue, docs, operator):
    """On the emulator: a completed key from before the class's dedup TTL is counted as one that
    runs again, the seek is refused until that is accepted, and then Pub/Sub redelivers it."""
    from datetime import timedelta

    from workloads.models import WorkOutcome, WorkResult

    spec = queue_spec(docs)
    moment = timezone.now() - timedelta(seconds=2)
    queue.publish(spec, [OutboundMessage(b"processed", {ATTR_IDEMPOTENCY_KEY: "acme:doc-9:1"})])
    assert len(drain(queue, docs, at_least=1)) == 1  # processed and acked
    # Its success was recorded longer ago than the class's dedup TTL: dedup no longer protects it.
    WorkResult.objects.create(
        workload_class=docs,
        idempotency_key="acme:doc-9:1",
        message_id="m-9",
        outcome=WorkOutcome.SUCCEEDED,
        attempts=1,
        completed_at=timezone.now() - timedelta(seconds=docs.dedup_ttl_seconds + 60),
    )
    past_window = moment - timedelta(seconds=docs.dedup_ttl_seconds + 3600)
    with pytest.raises(ApplicationError) as refused:
        subscription_seek_request(actor=operator, workload_class=docs, to_time=past_window, confirm=True)
    assert refused.value.code == "rerun_acknowledgement_required"
    assert refused.value.extra["impact"]["completed_rerun"] == 1
    seek = subscription_seek_request(
        actor=operator, workload_class=docs, to_time=past_window, confirm=True, accept_rerun=True, enqueue=False
    )
    assert engine.action_run(action_id=seek.pk).state == ActionState.SUCCEEDED
    assert [m.data for m in drain(queue, docs, at_least=1)] == [b"processed"]  # delivered again: it will run again
