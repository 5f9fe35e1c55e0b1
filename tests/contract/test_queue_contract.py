"""The Queue port's contract: the same behaviour from the local provider and from Pub/Sub."""

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.queue_sentinel import before_a_sentinel, is_sentinel
from workloads.providers.base import (
    ATTR_REPLAY_COUNT,
    DEAD_LETTER_DELIVERY_COUNT,
    DEAD_LETTER_PUBLISH_TIME,
    DEAD_LETTER_SOURCE_SUBSCRIPTION,
    Disposition,
    OutboundMessage,
    ProviderError,
)

WAIT = 30  # seconds: generous, the emulator is slow to start delivering on a busy machine


def _messages(count, prefix="m", **attributes):
    return [OutboundMessage(data=f"{prefix}{i}".encode(), attributes={"n": str(i), **attributes}) for i in range(count)]


def _consume_until(queue, spec, handler, *, done, max_concurrency=4, timeout=WAIT):
    """Run consume() in a thread until `done()` is true (or time runs out), then stop it."""
    stop = threading.Event()
    errors = []

    def run():
        try:
            queue.consume(spec, handler, max_concurrency=max_concurrency, stop=stop)
        except Exception as exc:  # surfaced below, so a crash fails the test instead of hanging
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=WAIT)
    assert not thread.is_alive(), "consume() did not return after stop was set"
    assert not errors, errors
    assert done(), "timed out waiting for deliveries"


def _pull_all(queue, spec, expected, timeout=WAIT):
    """Up to `expected` messages; a sentinel (tests/queue_sentinel.py) that a seek brought back is
    acked and not counted."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        batch = queue.pull(spec, max_messages=expected - len(got), timeout=1.0)
        sentinels = [m.ack_id for m in batch if is_sentinel(m)]
        if sentinels:
            queue.ack(spec, sentinels)
        got.extend(m for m in batch if not is_sentinel(m))
    return got


def test_publish_returns_ids_in_order_and_messages_round_trip(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    ids = queue.publish(spec, [OutboundMessage(b"hello", {"k": "v", "cp-class": spec.slug})] + _messages(3))
    assert len(ids) == 4 and len(set(ids)) == 4 and all(isinstance(i, str) and i for i in ids)
    received = _pull_all(queue, spec, 4)
    by_id = {m.message_id: m for m in received}
    assert set(by_id) == set(ids)
    first = by_id[ids[0]]
    assert first.data == b"hello" and first.attributes == {"k": "v", "cp-class": spec.slug}
    assert first.delivery_attempt == 1
    assert first.publish_time.tzinfo is not None
    assert abs(first.publish_time - datetime.now(UTC)) < timedelta(minutes=1)
    queue.ack(spec, [m.ack_id for m in received])
    assert before_a_sentinel(queue, spec) == []


def test_publish_reports_each_published_message_by_its_position(harness):
    """`on_published(index, message_id)`: what a caller publishing for several requests at once
    (ingestion's group commit) reads to know whose messages went out."""
    queue = harness.providers.queue
    spec = harness.ready_queue()
    reported = []
    ids = queue.publish(spec, _messages(5), on_published=lambda index, message_id: reported.append((index, message_id)))
    assert sorted(reported) == list(enumerate(ids))


def test_publish_to_a_missing_topic_reports_nothing_published(harness):
    queue = harness.providers.queue
    spec = harness.queue_spec()  # never created
    reported = []
    with pytest.raises(ProviderError) as raised:
        queue.publish(spec, _messages(2), on_published=lambda index, message_id: reported.append(index))
    assert raised.value.code == "NOT_FOUND" and reported == []


def test_ensure_resources_is_idempotent_and_reports_drift_without_overwriting(harness):
    queue = harness.providers.queue
    spec = harness.queue_spec()
    first = queue.ensure_resources(spec)
    assert spec.topic in first.created and spec.subscription in first.created
    assert spec.dead_letter_topic in first.created and spec.dead_letter_subscription in first.created
    assert first.drift == []
    second = queue.ensure_resources(spec)
    assert second.created == [] and second.updated == [] and second.drift == []

    changed = replace(spec, max_delivery_attempts=7, ack_deadline_seconds=30)
    report = queue.ensure_resources(changed)
    settings = {(d.resource, d.setting): (d.expected, d.actual) for d in report.drift}
    assert settings[(spec.subscription, "dead_letter_policy.max_delivery_attempts")] == (7, 5)
    assert settings[(spec.subscription, "ack_deadline_seconds")] == (30, 10)
    assert report.updated == []
    assert queue.ensure_resources(changed).drift != []  # still drifted: nothing was overwritten

    applied = queue.ensure_resources(changed, apply=True)
    assert spec.subscription in applied.updated
    assert queue.ensure_resources(changed).drift == []


def test_consume_never_exceeds_the_concurrency_bound(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    queue.publish(spec, _messages(12))
    lock = threading.Lock()
    state = {"in_flight": 0, "max": 0, "done": 0}

    def handler(message):
        with lock:
            state["in_flight"] += 1
            state["max"] = max(state["max"], state["in_flight"])
        time.sleep(0.3)
        with lock:
            state["in_flight"] -= 1
            state["done"] += 1
        return Disposition.ack()

    _consume_until(queue, spec, handler, done=lambda: state["done"] >= 12, max_concurrency=3)
    assert state["max"] == 3  # bounded, and the bound was actually reached
    # All acked. A plain pull, not a sentinel: right after consume() a sentinel may go to the stream
    # that just closed, which the emulator may never hand back (docs/gcp.md).
    assert _pull_all(queue, spec, 1, timeout=2) == []


def test_nack_redelivers_and_counts_delivery_attempts(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    queue.publish(spec, [OutboundMessage(b"flaky")])
    attempts = []

    def handler(message):
        attempts.append(message.delivery_attempt)
        return Disposition.ack() if message.delivery_attempt >= 3 else Disposition.nack(0)

    _consume_until(queue, spec, handler, done=lambda: len(attempts) >= 3, max_concurrency=1)
    assert attempts == [1, 2, 3]


def test_nack_with_a_delay_holds_the_message_back(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    queue.publish(spec, [OutboundMessage(b"later")])
    [message] = _pull_all(queue, spec, 1)
    nacked_at = time.monotonic()
    queue.nack(spec, [message.ack_id], delay_seconds=3)
    [again] = _pull_all(queue, spec, 1)
    assert time.monotonic() - nacked_at >= 2.5
    assert again.message_id == message.message_id and again.delivery_attempt == 2
    queue.ack(spec, [again.ack_id])


def test_max_attempts_moves_a_message_to_the_dead_letter_queue_with_source_attributes(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue(max_delivery_attempts=5)
    [message_id] = queue.publish(spec, [OutboundMessage(b"poison", {"origin": "test"})])
    attempts = []

    def always_fail(message):
        attempts.append(message.delivery_attempt)
        return Disposition.nack(0)

    _consume_until(queue, spec, always_fail, done=lambda: len(attempts) >= 5, max_concurrency=1)
    dead = []
    deadline = time.monotonic() + WAIT
    while not dead and time.monotonic() < deadline:
        dead = queue.peek_dead_letters(spec, max_messages=10)
        time.sleep(0.2)
    assert attempts == [1, 2, 3, 4, 5]
    assert len(dead) == 1
    letter = dead[0]
    assert letter.data == b"poison"
    assert letter.attributes["origin"] == "test"  # originals kept
    assert letter.attributes[DEAD_LETTER_DELIVERY_COUNT] == "5"
    assert letter.attributes[DEAD_LETTER_SOURCE_SUBSCRIPTION] == spec.subscription.rsplit("/", 1)[1]
    assert letter.attributes[DEAD_LETTER_PUBLISH_TIME].endswith("Z")
    queue.ack_dead_letters(spec, [letter.ack_id])
    assert queue.peek_dead_letters(spec, max_messages=10) == []
    # Gone from the work subscription too. A plain pull, not a sentinel: right after consume() a
    # sentinel may go to the stream that just closed, which the emulator may never hand back.
    assert _pull_all(queue, spec, 1, timeout=2) == []
    assert message_id  # the original id is not required to survive dead-lettering


def test_ordering_keys_deliver_in_order_one_at_a_time_per_key(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue(ordering=True)
    messages = []
    for i in range(5):
        messages.append(OutboundMessage(f"a{i}".encode(), ordering_key="doc-a"))
        messages.append(OutboundMessage(f"b{i}".encode(), ordering_key="doc-b"))
    queue.publish(spec, messages)
    lock = threading.Lock()
    seen = {"doc-a": [], "doc-b": []}
    in_flight = {"doc-a": 0, "doc-b": 0}
    overlap = []

    def handler(message):
        with lock:
            in_flight[message.ordering_key] += 1
            if in_flight[message.ordering_key] > 1:
                overlap.append(message.ordering_key)
        time.sleep(0.05)
        with lock:
            in_flight[message.ordering_key] -= 1
            seen[message.ordering_key].append(message.data.decode())
        return Disposition.ack()

    _consume_until(queue, spec, handler, done=lambda: sum(map(len, seen.values())) >= 10, max_concurrency=4)
    assert seen == {"doc-a": [f"a{i}" for i in range(5)], "doc-b": [f"b{i}" for i in range(5)]}
    assert overlap == []


def test_seek_to_a_time_redelivers_acked_messages_and_seek_to_now_clears_the_backlog(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    before = datetime.now(UTC) - timedelta(seconds=1)
    queue.publish(spec, _messages(3))
    received = _pull_all(queue, spec, 3)
    queue.ack(spec, [m.ack_id for m in received])
    assert before_a_sentinel(queue, spec) == []

    queue.seek(spec, to_time=before)
    again = _pull_all(queue, spec, 3)
    assert sorted(m.data for m in again) == [b"m0", b"m1", b"m2"]

    queue.nack(spec, [m.ack_id for m in again])  # waiting again, deliverable at once
    queue.seek(spec, to_time=datetime.now(UTC) + timedelta(seconds=1))
    assert before_a_sentinel(queue, spec) == []  # published after the seek: not cleared by it


def test_seek_to_a_snapshot_restores_its_acknowledgment_state(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    queue.publish(spec, [OutboundMessage(b"before-snapshot")])
    snapshot = queue.create_snapshot(spec, f"{spec.slug}-before-deploy")
    assert snapshot.name.endswith(f"/snapshots/{spec.slug}-before-deploy")
    queue.publish(spec, [OutboundMessage(b"after-snapshot")])
    received = _pull_all(queue, spec, 2)
    queue.ack(spec, [m.ack_id for m in received])
    assert before_a_sentinel(queue, spec) == []

    queue.seek(spec, to_snapshot=snapshot.name)
    again = _pull_all(queue, spec, 2)
    assert sorted(m.data for m in again) == [b"after-snapshot", b"before-snapshot"]


def test_list_snapshots_names_the_ones_the_subscription_can_seek_to(harness):
    queue = harness.providers.queue
    spec, other = harness.ready_queue(), harness.ready_queue()
    assert queue.list_snapshots(spec) == []
    taken = queue.create_snapshot(spec, f"{spec.slug}-b")
    queue.create_snapshot(spec, f"{spec.slug}-a")
    queue.create_snapshot(other, f"{other.slug}-elsewhere")  # another topic's: not seekable from spec
    listed = queue.list_snapshots(spec)
    assert [s.name.rsplit("/", 1)[1] for s in listed] == [f"{spec.slug}-a", f"{spec.slug}-b"]
    assert taken.name in {s.name for s in listed}


def test_topic_subscriptions_lists_every_subscription_a_publish_reaches(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    assert queue.topic_subscriptions(spec) == [spec.subscription]
    # A second consumer on the class topic (an audit sink, say): a replay reaches it too.
    audit = replace(
        spec,
        subscription=spec.subscription.replace("-worker", "-audit"),
        dead_letter_topic=spec.dead_letter_topic + "-audit",
        dead_letter_subscription=spec.dead_letter_subscription + "-audit",
    )
    queue.ensure_resources(audit)
    harness.ready_queue()  # another class's topic: not listed
    assert queue.topic_subscriptions(spec) == sorted([spec.subscription, audit.subscription])


def test_seek_needs_exactly_one_target(harness):
    spec = harness.ready_queue()
    with pytest.raises((ValueError, ProviderError)):
        harness.providers.queue.seek(spec)


def test_republish_carries_attributes_and_respects_the_velocity_cap(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    replayed = [
        OutboundMessage(f"r{i}".encode(), {"cp-idempotency-key": f"k{i}", ATTR_REPLAY_COUNT: "1"}) for i in range(6)
    ]
    progress = []
    started = time.monotonic()
    ids = queue.republish(spec, replayed, velocity=10, on_published=lambda index, mid: progress.append((index, mid)))
    elapsed = time.monotonic() - started
    assert elapsed >= 0.45  # 6 messages at 10/s: at least 5 gaps of 0.1 s
    assert [index for index, _ in progress] == list(range(6))
    assert [mid for _, mid in progress] == ids
    received = _pull_all(queue, spec, 6)
    assert sorted(m.attributes["cp-idempotency-key"] for m in received) == [f"k{i}" for i in range(6)]
    assert {m.attributes[ATTR_REPLAY_COUNT] for m in received} == {"1"}
    queue.ack(spec, [m.ack_id for m in received])


def test_consume_returns_promptly_when_stopped_while_idle(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    stop = threading.Event()
    thread = threading.Thread(
        target=queue.consume, args=(spec, lambda m: Disposition.ack()), kwargs={"max_concurrency": 2, "stop": stop}
    )
    thread.start()
    time.sleep(0.5)
    stopped_at = time.monotonic()
    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert time.monotonic() - stopped_at < 15


def test_in_flight_work_finishes_after_stop_and_nothing_is_lost(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    queue.publish(spec, _messages(6))
    started = threading.Event()
    finished = []
    stop = threading.Event()

    def slow(message):
        started.set()
        time.sleep(1.0)
        finished.append(message.message_id)
        return Disposition.ack()

    thread = threading.Thread(target=queue.consume, args=(spec, slow), kwargs={"max_concurrency": 2, "stop": stop})
    thread.start()
    assert started.wait(WAIT)
    stop.set()
    thread.join(timeout=WAIT)
    assert not thread.is_alive()
    assert 1 <= len(finished) <= 6
    # Released messages come back: at once where the nack is honoured; on the emulator, which
    # ignores a nack sent as the stream closes (docs/gcp.md), when the library's lease runs out
    # (the harness extends leases 10 s at a time: TEST_LEASE_EXTENSION_SECONDS).
    rest = _pull_all(queue, spec, 6 - len(finished), timeout=WAIT)
    assert len(rest) == 6 - len(finished)
    assert not {m.message_id for m in rest} & set(finished)
