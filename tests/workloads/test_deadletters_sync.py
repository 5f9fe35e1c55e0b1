"""The dead-letter mirror on the local provider: what a row records, ack only after commit, and
idempotent re-syncs when an ack or a write was lost."""

import base64
import json
from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.utils import timezone

from tests.workloads.deadletter_helpers import event, exhaust, kit_dead_letter, make_class
from workloads.models import DeadLetter, DeadLetterStatus, PayloadFormat
from workloads.models.deadletters import PAYLOAD_LIMIT_BYTES
from workloads.providers import set_providers
from workloads.providers.base import ATTR_REPLAY_COUNT, ATTR_REPLAY_OF, ProviderError, Providers
from workloads.providers.local import LocalMetrics, LocalQueue, LocalWorkerPools
from workloads.providers.specs import queue_spec
from workloads.services import deadletter_mirror as mirror


class Clock:
    """The local queue's clock, running with real time plus an offset the test moves forward."""

    def __init__(self):
        self.offset = timedelta()

    def __call__(self):
        return timezone.now() + self.offset

    def advance(self, **delta):
        self.offset += timedelta(**delta)


class AckFailingQueue(LocalQueue):
    """A queue whose dead-letter acks fail `failures` times (a network cut after the commit)."""

    failures = 0

    def ack_dead_letters(self, spec, ack_ids):
        if self.failures:
            self.failures -= 1
            raise ProviderError("connection reset", permanent=False, code="UNAVAILABLE")
        super().ack_dead_letters(spec, ack_ids)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def queue(db, clock):
    queue = AckFailingQueue(now=clock)
    set_providers(Providers(queue=queue, pools=LocalWorkerPools(), metrics=LocalMetrics(), name="local"))
    yield queue
    set_providers(None)


@pytest.fixture
def docs(queue):
    return make_class(queue, "doc-jobs")


def test_a_worker_kit_dead_letter_is_mirrored_with_its_error_and_acked(queue, docs):
    message_id = kit_dead_letter(queue, docs, event(1), attempts=4)
    assert mirror.dead_letters_sync(now=timezone.now()) == {"doc-jobs": 1}
    row = DeadLetter.objects.get()
    assert (row.message_id, row.last_message_id, row.status) == (message_id, message_id, DeadLetterStatus.NEW)
    assert row.payload == event(1) and row.payload_format == PayloadFormat.JSON and not row.payload_truncated
    assert (row.error_type, row.error_message, row.error_signature) == (
        "Unavailable",
        "backend unavailable",
        "sig-unavailable",
    )
    assert row.delivery_attempts == 4 and row.idempotency_key == "acme:doc-1:1" and row.replay_count == 0
    assert row.first_seen == row.last_seen and row.dead_letter_count == 1
    # Acked: nothing comes back even after the peek's lease would have expired.
    queue._now.advance(minutes=5)
    assert queue.peek_dead_letters(queue_spec(docs), max_messages=10) == []


def test_a_backstop_dead_letter_gets_a_type_and_a_shared_signature(queue, docs):
    spec = queue_spec(docs)
    from workloads.providers.base import OutboundMessage

    queue.publish(spec, [OutboundMessage(b'{"a":1}', {"cp-idempotency-key": "k1"}), OutboundMessage(b"{}", {})])
    exhaust(queue, docs, messages=2)
    mirror.dead_letters_sync(now=timezone.now())
    rows = list(DeadLetter.objects.order_by("message_id"))
    assert len(rows) == 2
    assert {r.error_type for r in rows} == {mirror.BACKSTOP_ERROR_TYPE}
    assert len({r.error_signature for r in rows}) == 1 and rows[0].error_signature
    assert rows[0].delivery_attempts == spec.max_delivery_attempts
    assert "Delivered 5 times" in rows[0].error_message
    assert rows[0].attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"


def test_a_lost_ack_makes_the_next_sync_see_the_same_messages_and_add_nothing(queue, docs, clock):
    kit_dead_letter(queue, docs, event(1))
    kit_dead_letter(queue, docs, event(2))
    queue.failures = 1
    assert mirror.dead_letters_sync(now=timezone.now()) == {"doc-jobs": 0}
    assert DeadLetter.objects.count() == 2  # committed before the ack failed
    clock.advance(seconds=61)  # the peek's lease runs out: the messages come back
    assert mirror.dead_letters_sync(now=timezone.now()) == {"doc-jobs": 2}
    assert DeadLetter.objects.count() == 2
    assert sorted(DeadLetter.objects.values_list("dead_letter_count", flat=True)) == [1, 1]
    clock.advance(seconds=61)
    assert queue.peek_dead_letters(queue_spec(docs), max_messages=10) == []


def test_a_failed_mirror_write_acks_nothing(queue, docs, clock, monkeypatch):
    kit_dead_letter(queue, docs, event(1))

    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(mirror, "_mirror_batch", broken)
    assert mirror.dead_letters_sync(now=timezone.now()) == {"doc-jobs": 0}
    monkeypatch.undo()
    clock.advance(seconds=61)
    assert mirror.dead_letters_sync(now=timezone.now()) == {"doc-jobs": 1}
    assert DeadLetter.objects.count() == 1


def test_a_replay_that_fails_again_updates_its_row(queue, docs):
    first = kit_dead_letter(queue, docs, event(1))
    mirror.dead_letters_sync(now=timezone.now())
    row = DeadLetter.objects.get()
    row.status = DeadLetterStatus.REPLAYED
    row.save()
    second = kit_dead_letter(
        queue,
        docs,
        event(1),
        error_type="Timeout",
        signature="sig-timeout",
        extra={ATTR_REPLAY_OF: first, ATTR_REPLAY_COUNT: "1"},
    )
    mirror.dead_letters_sync(now=timezone.now())
    row.refresh_from_db()
    assert DeadLetter.objects.count() == 1
    assert (row.message_id, row.last_message_id) == (first, second)
    assert (row.dead_letter_count, row.replay_count, row.status) == (2, 1, DeadLetterStatus.NEW)
    assert (row.error_type, row.error_signature) == ("Timeout", "sig-timeout")
    assert row.last_seen >= row.first_seen


def test_classes_whose_queues_do_not_exist_yet_are_skipped(queue, docs):
    from tests.factories import WorkloadClassFactory

    WorkloadClassFactory(slug="no-queue-yet")
    kit_dead_letter(queue, docs, event(1))
    assert mirror.dead_letters_sync(now=timezone.now()) == {"doc-jobs": 1, "no-queue-yet": 0}


def test_large_batches_drain_over_several_peeks(queue, docs):
    for n in range(7):
        kit_dead_letter(queue, docs, event(n))
    assert mirror.dead_letters_sync(now=timezone.now(), batch_size=3) == {"doc-jobs": 7}
    assert DeadLetter.objects.count() == 7


@pytest.mark.parametrize(
    ("body", "fmt", "check"),
    [
        (b"plain text, not JSON", PayloadFormat.TEXT, lambda r: r.payload_text == "plain text, not JSON"),
        (b"\x00\xffbinary", PayloadFormat.BASE64, lambda r: base64.b64decode(r.payload_text) == b"\x00\xffbinary"),
        (b'{"a": NaN}', PayloadFormat.TEXT, lambda r: r.payload_text == '{"a": NaN}'),
        (b'{"a": "\\u0000"}', PayloadFormat.TEXT, lambda r: r.payload_text == '{"a": "\\u0000"}'),
        (b'{"a": "\\ud800"}', PayloadFormat.TEXT, lambda r: r.payload_text == '{"a": "\\ud800"}'),
        (b'{"a": "\\ud83d\\ude00"}', PayloadFormat.TEXT, lambda r: "ud83d" in r.payload_text),
        (b"[1, 2]", PayloadFormat.JSON, lambda r: r.payload == [1, 2]),
    ],
    ids=["text", "binary", "nan", "nul-escape", "lone-surrogate", "escaped-pair", "json-array"],
)
def test_payloads_are_kept_in_a_form_the_database_can_store(queue, docs, body, fmt, check):
    kit_dead_letter(queue, docs, None, data=body)
    mirror.dead_letters_sync(now=timezone.now())
    row = DeadLetter.objects.get()
    assert row.payload_format == fmt and check(row) and row.payload_size == len(body)


def test_a_payload_over_the_limit_is_cut_and_flagged(queue, docs):
    # An odd prefix, so the cut falls inside a two-byte character.
    big = json.dumps({"blob": "x" + "é" * PAYLOAD_LIMIT_BYTES}, ensure_ascii=False).encode()
    kit_dead_letter(queue, docs, None, data=big)
    mirror.dead_letters_sync(now=timezone.now())
    row = DeadLetter.objects.get()
    assert row.payload_truncated and row.payload_size == len(big)
    assert row.payload_format == PayloadFormat.TEXT
    assert len(row.payload_text.encode()) <= PAYLOAD_LIMIT_BYTES
    assert row.payload_text.startswith('{"blob": "xéé') and row.payload_text.endswith("é")
    assert len(row.payload_text.encode()) == PAYLOAD_LIMIT_BYTES - 1


def test_the_beat_tasks_run_the_sync_and_the_rules(queue, docs, settings):
    from workloads import tasks
    from workloads.models import TriageRule

    kit_dead_letter(queue, docs, event(1), signature="sig-noise")
    TriageRule.objects.create(name="drop noise", error_signature="sig-noise", action="discard")
    tasks.dead_letters_sync()
    tasks.triage_rules_run()
    assert DeadLetter.objects.get().status == DeadLetterStatus.DISCARDED
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"workloads.tasks.dead_letters_sync", "workloads.tasks.triage_rules_run"} <= schedule


def test_a_body_the_database_refuses_is_kept_as_base64_instead_of_blocking_the_mirror(queue, docs, monkeypatch):
    import re

    # Pretend the guard did not know lone surrogates: PostgreSQL's jsonb then refuses the row.
    monkeypatch.setattr(mirror, "_JSONB_UNSAFE", re.compile("(?!)"))
    body = b'{"a": "\\ud800"}'
    kit_dead_letter(queue, docs, None, data=body)
    kit_dead_letter(queue, docs, event(2))
    assert mirror.dead_letters_sync(now=timezone.now()) == {"doc-jobs": 2}
    formats = sorted(DeadLetter.objects.values_list("payload_format", flat=True))
    assert formats == [PayloadFormat.BASE64, PayloadFormat.BASE64]
    row = DeadLetter.objects.get(payload_size=len(body))
    assert base64.b64decode(row.payload_text) == body


def test_nul_characters_in_attributes_are_stored_replaced(docs):
    # Pub/Sub strings may hold NUL; the local queue cannot even carry them, so hand the batch over.
    from workloads.providers.base import ReceivedMessage

    message = ReceivedMessage(
        message_id="42",
        ack_id="x",
        data=b"{}",
        attributes={"cp-error-type": "Bad", "cp-error-message": "bad\x00byte", "note": "a\x00b"},
        ordering_key="",
        delivery_attempt=1,
        publish_time=timezone.now(),
    )
    mirror._mirror_batch(docs, [message], now=timezone.now())
    row = DeadLetter.objects.get()
    assert row.error_message == "bad\ufffdbyte" and row.attributes["note"] == "a\ufffdb"


def test_the_dead_lettered_counter_counts_each_dead_letter_once(queue, docs, clock):
    from workloads.models import ClassCounters

    kit_dead_letter(queue, docs, event(1))
    kit_dead_letter(queue, docs, event(2))
    queue.failures = 1
    mirror.dead_letters_sync(now=timezone.now())
    assert ClassCounters.objects.get(workload_class=docs).dead_lettered == 2
    clock.advance(seconds=61)  # the lost ack brings both back: mirrored before, not counted again
    mirror.dead_letters_sync(now=timezone.now())
    kit_dead_letter(queue, docs, event(3))
    mirror.dead_letters_sync(now=timezone.now())
    assert ClassCounters.objects.get(workload_class=docs).dead_lettered == 3
    DeadLetter.objects.all().delete()  # pruned or discarded rows never take from the total
    assert ClassCounters.objects.get(workload_class=docs).dead_lettered == 3


# --- Which subscriptions a tick reads -------------------------------------------------------------------
def test_a_subscription_found_empty_is_skipped_until_the_recheck(queue, docs, settings):
    from workloads.models import DeadLetterSyncState

    settings.DEAD_LETTER_SYNC_RECHECK_SECONDS = 300
    t0 = timezone.now()
    assert mirror.dead_letters_sync(now=t0) == {"doc-jobs": 0}
    assert DeadLetterSyncState.objects.get(workload_class=docs).empty
    kit_dead_letter(queue, docs, event(1))
    # The last check found it empty and nothing says otherwise: not read this tick.
    assert mirror.dead_letters_sync(now=t0 + timedelta(seconds=30)) == {"doc-jobs": 0}
    assert DeadLetter.objects.count() == 0
    # Rechecked once the interval has passed.
    assert mirror.dead_letters_sync(now=t0 + timedelta(seconds=300)) == {"doc-jobs": 1}
    state = DeadLetterSyncState.objects.get(workload_class=docs)
    assert not state.empty and state.checked_at == t0 + timedelta(seconds=300)
    # It had dead letters: the next tick reads it again (and finds it drained).
    assert mirror.dead_letters_sync(now=t0 + timedelta(seconds=330)) == {"doc-jobs": 0}
    assert DeadLetterSyncState.objects.get(workload_class=docs).empty


def test_the_telemetry_poll_seeing_dead_letters_makes_a_skipped_subscription_due(queue, docs, settings):
    from workloads.models import ClassTelemetry

    settings.DEAD_LETTER_SYNC_RECHECK_SECONDS = 300
    t0 = timezone.now()
    mirror.dead_letters_sync(now=t0)
    kit_dead_letter(queue, docs, event(1))
    # A sample from before the last check says nothing new.
    telemetry = ClassTelemetry.objects.create(
        workload_class=docs, fetched_at=t0, newest_sample_at=t0 - timedelta(seconds=60), dead_letter_backlog=1
    )
    assert mirror.dead_letters_sync(now=t0 + timedelta(seconds=30)) == {"doc-jobs": 0}
    telemetry.newest_sample_at = t0 + timedelta(seconds=40)
    telemetry.save()
    assert mirror.dead_letters_sync(now=t0 + timedelta(seconds=60)) == {"doc-jobs": 1}


def test_a_failed_read_is_retried_next_tick(queue, docs, settings, monkeypatch):
    settings.DEAD_LETTER_SYNC_RECHECK_SECONDS = 300
    kit_dead_letter(queue, docs, event(1))

    def denied(spec, *, max_messages):
        raise ProviderError("Permission denied", permanent=True, code="PERMISSION_DENIED")

    monkeypatch.setattr(queue, "peek_dead_letters", denied)
    t0 = timezone.now()
    assert mirror.dead_letters_sync(now=t0) == {"doc-jobs": 0}
    monkeypatch.undo()
    assert mirror.dead_letters_sync(now=t0 + timedelta(seconds=30)) == {"doc-jobs": 1}
