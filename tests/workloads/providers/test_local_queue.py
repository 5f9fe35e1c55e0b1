"""The local queue beyond the contract suite: exclusive leases under concurrency, retry backoff,
lease expiry, ordering after a nack, retention and prune."""

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import OperationalError, connections, transaction
from django.test.utils import CaptureQueriesContext

from tests.workloads.providers.conftest import ALIASES, queue_spec
from tests.workloads.runtime.conftest import wait_for
from workloads.providers.base import (
    DEAD_LETTER_DELIVERY_COUNT,
    DEAD_LETTER_PUBLISH_TIME,
    DEAD_LETTER_SOURCE_PROJECT,
    Disposition,
    OutboundMessage,
    ProviderError,
)
from workloads.providers.local import LocalQueue, local_queue_prune
from workloads.providers.local.models import LocalDelivery, LocalMessage, LocalSnapshot, LocalSubscription
from workloads.providers.local.queue import retry_backoff_seconds
from workloads.providers.local.queue.common import PUBLISH_BATCH

ROOT = Path(__file__).resolve().parents[3]


def _messages(count, prefix="m"):
    return [OutboundMessage(f"{prefix}{i}".encode()) for i in range(count)]


def _drain(queue, spec, batch):
    """Lease until the subscription has nothing left; returns the message ids this caller got."""
    got, empty_polls = [], 0
    while empty_polls < 3:
        received = queue.pull(spec, max_messages=batch, timeout=0)
        if not received:
            empty_polls += 1
            time.sleep(0.01)
            continue
        empty_polls = 0
        got += [m.message_id for m in received]
        queue.ack(spec, [m.ack_id for m in received])
        time.sleep(0.002)  # "work": SQLite's busy wait would otherwise let one caller drain it all
    return got


@pytest.mark.parametrize("alias", ALIASES)
def test_two_threads_leasing_at_once_never_get_the_same_message(alias):
    queue = LocalQueue(using=alias)
    spec = queue_spec()
    queue.ensure_resources(spec)
    ids = queue.publish(spec, _messages(300))
    results = {}
    go = threading.Barrier(2)

    def consumer(name):
        try:
            go.wait()
            results[name] = _drain(queue, spec, batch=7)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=consumer, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert set(results) == {"a", "b"}
    assert not set(results["a"]) & set(results["b"])
    assert sorted(results["a"] + results["b"], key=int) == ids  # each exactly once, none lost
    assert results["a"] and results["b"]  # both really competed


_CHILD = """
import json, os, sys, time
import django
django.setup()
from workloads.providers.base import QueueSpec
from workloads.providers.local import LocalQueue
alias, spec, ready, go = sys.argv[1], QueueSpec(**json.loads(sys.argv[2])), sys.argv[3], sys.argv[4]
queue = LocalQueue(using=alias)
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
got, empty_polls = [], 0
while empty_polls < 3:
    received = queue.pull(spec, max_messages=5, timeout=0)
    if not received:
        empty_polls += 1
        time.sleep(0.01)
        continue
    empty_polls = 0
    got += [m.message_id for m in received]
    queue.ack(spec, [m.ack_id for m in received])
    time.sleep(0.002)
print(json.dumps(got))
"""


@pytest.mark.parametrize("alias", ALIASES)
def test_two_processes_leasing_at_once_never_get_the_same_message(alias, tmp_path):
    queue = LocalQueue(using=alias)
    spec = queue_spec()
    queue.ensure_resources(spec)
    ids = queue.publish(spec, _messages(400))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings.test"}
    if alias == "default":  # the children's default database is this test's database
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{connections['default'].settings_dict['NAME']}"
    go = tmp_path / "go"
    children = []
    for name in ("a", "b"):
        ready = tmp_path / f"ready-{name}"
        args = [sys.executable, "-c", _CHILD, alias, json.dumps(asdict(spec)), str(ready), str(go)]
        children.append((ready, subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)))
    try:
        deadline = time.monotonic() + 60
        while not all(ready.exists() for ready, _ in children) and time.monotonic() < deadline:
            time.sleep(0.02)
        go.touch()
        outputs = [process.communicate(timeout=120)[0] for _, process in children]
    finally:
        for _, process in children:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [process.returncode for _, process in children] == [0, 0]
    first, second = (json.loads(output.strip().splitlines()[-1]) for output in outputs)
    assert not set(first) & set(second)
    assert sorted(first + second, key=int) == ids
    assert first and second


def test_retry_backoff_grows_from_the_minimum_to_the_maximum():
    assert [retry_backoff_seconds(attempts=n, minimum=10, maximum=60) for n in range(1, 7)] == [
        10,
        20,
        40,
        60,
        60,
        60,
    ]
    assert retry_backoff_seconds(attempts=3, minimum=0, maximum=0) == 0
    assert retry_backoff_seconds(attempts=1, minimum=5, maximum=5) == 5


def test_a_nack_without_delay_follows_the_retry_policy_and_an_explicit_delay_wins(db, clock):
    queue = LocalQueue(now=clock)
    spec = queue_spec(min_backoff_seconds=10, max_backoff_seconds=60, max_delivery_attempts=100)
    queue.ensure_resources(spec)
    queue.publish(spec, _messages(1))
    waits = []
    for _ in range(5):
        [message] = queue.pull(spec, max_messages=1, timeout=0)
        queue.nack(spec, [message.ack_id])
        visible_at = LocalDelivery.objects.get().visible_at
        waits.append((visible_at - clock.now).total_seconds())
        assert queue.pull(spec, max_messages=1, timeout=0) == []  # held back meanwhile
        clock.now = visible_at
    assert waits == [10, 20, 40, 60, 60]

    [message] = queue.pull(spec, max_messages=1, timeout=0)
    queue.nack(spec, [message.ack_id], delay_seconds=3)
    assert (LocalDelivery.objects.get().visible_at - clock.now).total_seconds() == 3


def test_an_expired_lease_counts_as_an_attempt_and_the_last_one_moves_the_message(db, clock):
    queue = LocalQueue(now=clock)
    spec = queue_spec(ack_deadline_seconds=10, max_delivery_attempts=5)
    queue.ensure_resources(spec)
    published_at = clock.now
    queue.publish(spec, [OutboundMessage(b"slow", {"k": "v"})])
    attempts = []
    for _ in range(5):
        [message] = queue.pull(spec, max_messages=1, timeout=0)
        attempts.append(message.delivery_attempt)
        assert queue.pull(spec, max_messages=1, timeout=0) == []  # leased: hidden
        clock.advance(seconds=11)  # the worker died: its lease runs out
    assert attempts == [1, 2, 3, 4, 5]
    assert queue.pull(spec, max_messages=1, timeout=0) == []  # moved instead of a sixth delivery
    [letter] = queue.peek_dead_letters(spec, max_messages=5)
    assert letter.attributes[DEAD_LETTER_DELIVERY_COUNT] == "5"
    assert letter.attributes[DEAD_LETTER_SOURCE_PROJECT] == "local-proj"
    assert letter.attributes[DEAD_LETTER_PUBLISH_TIME] == published_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert letter.attributes["k"] == "v"
    assert LocalDelivery.objects.filter(subscription__name=spec.subscription, dead_lettered=True).count() == 1


def test_a_stale_ack_after_the_lease_moved_on_is_ignored(db, clock):
    queue = LocalQueue(now=clock)
    spec = queue_spec(ack_deadline_seconds=10)
    queue.ensure_resources(spec)
    queue.publish(spec, _messages(1))
    [first] = queue.pull(spec, max_messages=1, timeout=0)
    clock.advance(seconds=11)
    [second] = queue.pull(spec, max_messages=1, timeout=0)
    queue.ack(spec, [first.ack_id])  # too late: someone else holds it now
    assert LocalDelivery.objects.get().acked_at is None
    queue.ack(spec, [second.ack_id])
    assert LocalDelivery.objects.get().acked_at == clock.now


def test_a_nacked_message_blocks_the_rest_of_its_ordering_key_only(db, clock):
    queue = LocalQueue(now=clock)
    spec = queue_spec(ordering=True, max_delivery_attempts=100)
    queue.ensure_resources(spec)
    queue.publish(
        spec,
        [
            OutboundMessage(b"a0", ordering_key="a"),
            OutboundMessage(b"a1", ordering_key="a"),
            OutboundMessage(b"b0", ordering_key="b"),
            OutboundMessage(b"free"),
        ],
    )
    first = queue.pull(spec, max_messages=10, timeout=0)
    assert sorted(m.data for m in first) == [b"a0", b"b0", b"free"]  # one per key, unkeyed freely
    a0 = next(m for m in first if m.data == b"a0")
    queue.nack(spec, [a0.ack_id], delay_seconds=30)
    queue.ack(spec, [m.ack_id for m in first if m is not a0])
    assert queue.pull(spec, max_messages=10, timeout=0) == []  # a1 waits behind the nacked a0
    clock.advance(seconds=31)
    [again] = queue.pull(spec, max_messages=10, timeout=0)
    assert again.data == b"a0" and again.delivery_attempt == 2
    queue.ack(spec, [again.ack_id])
    assert [m.data for m in queue.pull(spec, max_messages=10, timeout=0)] == [b"a1"]


def test_ordering_drift_is_reported_but_never_applied(db):
    queue = LocalQueue()
    spec = queue_spec()
    queue.ensure_resources(spec)
    applied = queue.ensure_resources(replace(spec, ordering=True, min_backoff_seconds=5), apply=True)
    assert {d.setting for d in applied.drift} == {"enable_message_ordering", "retry_policy.minimum_backoff"}
    subscription = LocalSubscription.objects.get(name=spec.subscription)
    assert subscription.min_backoff_seconds == 5 and subscription.ordering is False  # as Pub/Sub: recreate it
    [drift] = queue.ensure_resources(replace(spec, ordering=True, min_backoff_seconds=5)).drift
    assert (drift.setting, drift.expected, drift.actual) == ("enable_message_ordering", True, False)


def test_the_dead_letter_subscription_keeps_seven_days_whatever_the_class_retention(db):
    queue = LocalQueue()
    spec = replace(queue_spec(), message_retention_seconds=600)
    queue.ensure_resources(spec)
    assert LocalSubscription.objects.get(name=spec.dead_letter_subscription).retention_seconds == 7 * 86400
    LocalSubscription.objects.filter(name=spec.dead_letter_subscription).update(retention_seconds=600)
    [drift] = queue.ensure_resources(spec).drift
    assert (drift.resource, drift.setting, drift.expected, drift.actual) == (
        spec.dead_letter_subscription,
        "message_retention_duration",
        7 * 86400,
        600,
    )
    queue.ensure_resources(spec, apply=True)
    assert LocalSubscription.objects.get(name=spec.dead_letter_subscription).retention_seconds == 7 * 86400
    assert queue.ensure_resources(spec).drift == []


def test_unknown_resources_are_permanent_not_found_errors_naming_them(db):
    queue = LocalQueue()
    spec = queue_spec("ghost")
    with pytest.raises(ProviderError) as publishing:
        queue.publish(spec, _messages(1))
    with pytest.raises(ProviderError) as pulling:
        queue.pull(spec, max_messages=1, timeout=0)
    for caught, name in ((publishing, spec.topic), (pulling, spec.subscription)):
        assert caught.value.permanent and caught.value.code == "NOT_FOUND"
        assert name in caught.value.message and "ensure_resources" in caught.value.message


def test_messages_released_unhandled_get_their_attempt_back(db, clock):
    queue = LocalQueue(now=clock)
    spec = queue_spec()
    queue.ensure_resources(spec)
    queue.publish(spec, _messages(1))
    [message] = queue.pull(spec, max_messages=1, timeout=0)
    pk, token = message.ack_id.split(":")
    queue._release({token: [int(pk)]})  # what consume() does with leases no handler started
    [again] = queue.pull(spec, max_messages=1, timeout=0)
    assert again.delivery_attempt == 1


@pytest.mark.parametrize("alias", ALIASES)
def test_a_running_handler_keeps_its_lease_past_the_ack_deadline(alias, clock):
    queue = LocalQueue(using=alias, now=clock)
    spec = queue_spec(ack_deadline_seconds=2)
    queue.ensure_resources(spec)
    queue.publish(spec, _messages(1))
    started, finish, seen = threading.Event(), threading.Event(), []

    def slow(message):
        seen.append(message.delivery_attempt)
        started.set()
        assert finish.wait(30)
        return Disposition.ack()

    stop = threading.Event()
    thread = threading.Thread(target=queue.consume, args=(spec, slow), kwargs={"max_concurrency": 1, "stop": stop})
    thread.start()
    try:
        assert started.wait(10)
        # Past the 2 s deadline on the queue's clock, not by sleeping through it: only the
        # heartbeat (every 2/3 s of real time) can push the lease beyond the new time.
        clock.advance(seconds=2.5)
        wait_for(lambda: LocalDelivery.objects.using(alias).get().visible_at, lambda at: at > clock.now, timeout=10)
        assert queue.pull(spec, max_messages=1, timeout=0) == []
    finally:
        finish.set()
        stop.set()
        thread.join(timeout=15)
    assert seen == [1]
    assert queue.pull(spec, max_messages=1, timeout=0) == []  # acked once, never redelivered


def test_prune_drops_what_fell_out_of_retention_and_keeps_the_rest(db, clock):
    queue = LocalQueue(now=clock)
    spec = queue_spec(message_retention_seconds=600)
    queue.ensure_resources(spec)
    old_ids = queue.publish(spec, _messages(3, "old"))
    received = {m.message_id: m for m in queue.pull(spec, max_messages=3, timeout=0)}
    queue.ack(spec, [received[old_ids[0]].ack_id, received[old_ids[1]].ack_id])
    snapshot = queue.create_snapshot(spec, "keep")  # holds the one old message still unacked
    clock.advance(minutes=5)
    [recent_id] = queue.publish(spec, _messages(1, "recent"))
    [recent] = queue.pull(spec, max_messages=1, timeout=0)
    queue.ack(spec, [recent.ack_id])

    clock.advance(minutes=6)  # old ones are 11 minutes old, the recent one 6
    counts = local_queue_prune(now=clock.now)
    left = set(LocalDelivery.objects.filter(subscription__name=spec.subscription).values_list("message_id", flat=True))
    assert left == {int(old_ids[2]), int(recent_id)}  # the held one stays for its snapshot
    assert counts["deliveries"] == 2 and counts["messages"] == 2 and counts["snapshots"] == 0
    assert not LocalMessage.objects.filter(pk__in=[int(old_ids[0]), int(old_ids[1])]).exists()

    clock.advance(days=7)  # the snapshot expires; then nothing holds the old message
    counts = local_queue_prune(now=clock.now)
    assert counts["snapshots"] == 1 and counts["deliveries"] == 2
    assert not LocalSnapshot.objects.filter(name=snapshot.name).exists()
    assert not LocalDelivery.objects.exists() and not LocalMessage.objects.exists()
    assert local_queue_prune(now=clock.now) == {"deliveries": 0, "snapshots": 0, "messages": 0}


def test_republish_without_a_cap_reports_every_message(db):
    queue = LocalQueue()
    spec = queue_spec()
    queue.ensure_resources(spec)
    progress = []
    ids = queue.republish(spec, _messages(3), on_published=lambda i, mid: progress.append((i, mid)))
    assert progress == list(enumerate(ids))
    with pytest.raises(ValueError):
        queue.republish(spec, _messages(1), velocity=0)


@pytest.mark.parametrize("alias", ALIASES)
def test_a_publish_outside_a_transaction_reports_the_batches_out_before_one_failed(alias):
    """Outside a transaction each batch commits on its own, so when a later one fails,
    `on_published` still names the messages already out (the Queue port's contract: reported also
    when others of the call failed)."""
    queue = LocalQueue(using=alias)
    spec = queue_spec()
    queue.ensure_resources(spec)
    message_inserts = []

    def fail_the_second_batch(execute, sql, params, many, context):
        if 'INSERT INTO "workloads_localmessage"' in sql:
            message_inserts.append(sql)
            if len(message_inserts) == 2:
                raise OperationalError("injected: the second batch fails")
        return execute(sql, params, many, context)

    reported = []
    with connections[alias].execute_wrapper(fail_the_second_batch), pytest.raises(OperationalError):
        queue.publish(spec, _messages(PUBLISH_BATCH + 2), on_published=lambda i, mid: reported.append((i, mid)))
    stored = LocalMessage.objects.using(alias).values_list("pk", flat=True)
    assert [index for index, _id in reported] == list(range(PUBLISH_BATCH))
    assert sorted(int(message_id) for _index, message_id in reported) == sorted(stored)


def test_a_seek_into_a_dead_lettered_message_delivers_it_again_from_the_first_attempt(db, clock):
    queue = LocalQueue(now=clock)
    spec = queue_spec(max_delivery_attempts=5)
    queue.ensure_resources(spec)
    before = clock.now - timedelta(seconds=1)
    queue.publish(spec, _messages(1))
    for _ in range(5):
        [message] = queue.pull(spec, max_messages=1, timeout=0)
        queue.nack(spec, [message.ack_id])
    assert queue.pull(spec, max_messages=1, timeout=0) == []
    queue.seek(spec, to_time=before)
    [again] = queue.pull(spec, max_messages=1, timeout=0)
    assert again.delivery_attempt == 1


@pytest.mark.parametrize("alias", ALIASES[:1])
def test_a_handler_that_raises_or_returns_nonsense_gets_the_message_again(alias):
    queue = LocalQueue(using=alias)
    spec = queue_spec()
    queue.ensure_resources(spec)
    queue.publish(spec, _messages(1))
    attempts = []

    def flaky(message):
        attempts.append(message.delivery_attempt)
        if message.delivery_attempt == 1:
            raise RuntimeError("boom")
        return None if message.delivery_attempt == 2 else Disposition.ack()

    stop = threading.Event()
    thread = threading.Thread(target=queue.consume, args=(spec, flaky), kwargs={"max_concurrency": 2, "stop": stop})
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while len(attempts) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=15)
    assert attempts == [1, 2, 3]
    assert LocalDelivery.objects.get().acked_at is not None


@pytest.mark.parametrize("alias", ALIASES[:1])  # the one-statement publish is PostgreSQL's
def test_the_one_statement_publish_stores_what_the_row_by_row_publish_stores(alias):
    """PostgreSQL publishes with one statement whose messages come as one JSON parameter (data as
    hex, attributes, ordering key); the rows must be those of the ORM-prepared inserts that SQLite
    and replays use: every byte of the data, the attributes' text, the ordering keys, in order."""
    at = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)
    queue = LocalQueue(using=alias, now=lambda: at)
    spec = queue_spec()
    queue.ensure_resources(spec)
    awkward = 'it\'s "q" \\ \u00e9\u2028\U0001f600'
    messages = [
        OutboundMessage(bytes(range(256)) + b"%d" % n, {"cp-n": str(n), "text": awkward}, f"{awkward}{n % 2}")
        for n in range(3)
    ] + [OutboundMessage(b"", {}, "")]

    def stored():
        connection = connections[alias]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT m.topic_id, m.data, m.attributes::text, m.ordering_key, m.published_at, "
                "d.subscription_id, d.ordering_key, d.published_at, d.visible_at, d.attempts, d.lease_token, "
                "d.acked_at, d.dead_lettered FROM workloads_localmessage m "
                "LEFT JOIN workloads_localdelivery d ON d.message_id = m.id ORDER BY m.id, d.subscription_id"
            )
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cursor.fetchall()]

    with CaptureQueriesContext(connections[alias]) as queries:
        ids = queue.publish(spec, messages)
    assert any("jsonb_array_elements" in query["sql"] for query in queries.captured_queries)
    in_one_statement = stored()
    LocalMessage.objects.using(alias).all().delete()
    with transaction.atomic(using=alias):
        topic, subscriptions = queue._topic_with_subscriptions(spec.topic)
        queue._insert(topic, messages, at, subscriptions=subscriptions)
    assert stored() == in_one_statement
    assert len(ids) == 4 and ids == sorted(ids, key=int)
    assert in_one_statement[0][1] == messages[0].data and in_one_statement[-1][1] == b""
