"""Replays on the local provider: selection, preview, dry run, what is published, the loop guard,
velocity, chunks, cancel, edit-and-replay, discard, and a crash mid-replay that publishes nothing
twice."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.workloads.deadletter_helpers import dead_letter_row, event, make_class, waiting
from workloads.errors import ApplicationError, NotFoundError
from workloads.models import Action, ActionState, AuditEvent, DeadLetter, DeadLetterStatus, StepState
from workloads.providers import get_providers
from workloads.providers.base import (
    ATTR_IDEMPOTENCY_KEY,
    ATTR_REPLAY_COUNT,
    ATTR_REPLAY_OF,
)
from workloads.services import actions as engine
from workloads.services import deadletters as services
from workloads.services import replay_run
from workloads.services.deadletters import DeadLetterFilter


@pytest.fixture
def queue(db):
    return get_providers().queue


@pytest.fixture
def docs(queue):
    return make_class(queue, "doc-jobs", replay_limit=2)


def _rows(docs, n, **fields):
    return [dead_letter_row(docs, **fields) for _ in range(n)]


def _replay(operator, selection, **kwargs):
    # As an operator who confirmed the count the preview showed (the bulk guard has tests of its own).
    kwargs.setdefault("confirm_count", services.replay_preview(selection=selection).replayable)
    return services.replay_request(actor=operator, selection=selection, enqueue=False, **kwargs)


def _run(action, **kwargs):
    return engine.action_run(action_id=action.pk, sleep=lambda s: None, **kwargs)


def test_an_empty_filter_is_refused(docs):
    with pytest.raises(ApplicationError) as refused:
        services.replay_preview(selection=DeadLetterFilter(workload_class=docs))
    assert refused.value.code == "empty_filter" and refused.value.status == 400


def test_preview_counts_what_a_filter_selects_and_what_it_would_refuse(docs):
    _rows(docs, 3)
    dead_letter_row(docs, replay_count=2)  # at the class's limit
    dead_letter_row(docs, payload_truncated=True)
    dead_letter_row(docs, error_signature="other")
    dead_letter_row(docs, status=DeadLetterStatus.REPLAYED)
    selection = DeadLetterFilter(workload_class=docs, error_signature="sig-unavailable")
    preview = services.replay_preview(selection=selection)
    assert preview == services.ReplayPreview(
        matching=5, replayable=3, refused_loop_guard=1, refused_truncated=1, refused_discarded=0
    )


def test_a_time_range_selects_on_last_seen(docs):
    now = timezone.now()
    old = dead_letter_row(docs, seen=now - timedelta(hours=3))
    recent = dead_letter_row(docs, seen=now - timedelta(minutes=5))
    selection = DeadLetterFilter(workload_class=docs, seen_after=now - timedelta(hours=1))
    assert list(selection.queryset()) == [recent]
    selection = DeadLetterFilter(workload_class=docs, seen_before=now - timedelta(hours=1))
    assert list(selection.queryset()) == [old]


def test_a_dry_run_publishes_nothing_and_shows_what_would_be(queue, docs, operator):
    rows = _rows(docs, 2)
    dead_letter_row(docs, replay_count=2)
    dry = services.replay_dry_run(selection=DeadLetterFilter(workload_class=docs, error_signature="sig-unavailable"))
    assert dry.preview.replayable == 2 and len(dry.items) == 3
    first = dry.items[0]
    assert first.id == rows[0].pk and first.refusal == ""
    assert first.attributes[ATTR_REPLAY_COUNT] == "1" and first.attributes[ATTR_REPLAY_OF] == rows[0].message_id
    assert "loop guard" in dry.items[2].refusal
    assert waiting(queue, docs) == [] and not Action.objects.exists()


def test_a_replay_republishes_each_message_with_its_attributes_and_marks_it(queue, docs, operator):
    payload = event(7)
    row = dead_letter_row(
        docs,
        payload=payload,
        attributes={
            ATTR_IDEMPOTENCY_KEY: "acme:doc-7:1",
            "cp-class": "doc-jobs",
            "cp-error-type": "Unavailable",
            "cp-error-signature": "sig-unavailable",
            "cp-error-message": "backend unavailable",
            "cp-attempts": "5",
            "CloudPubSubDeadLetterSourceDeliveryCount": "5",
            "custom": "kept",
        },
        idempotency_key="acme:doc-7:1",
        replay_count=1,
    )
    action = _replay(operator, DeadLetterFilter(workload_class=docs, ids=(row.pk,)), velocity=20, name="fix deploy")
    assert action.parameters["velocity"] == 20 and action.name == "fix deploy"
    done = _run(action)
    assert done.state == ActionState.SUCCEEDED and done.result == {"replayed": 1, "refused": 0}
    [message] = waiting(queue, docs)
    assert json.loads(message.data) == payload
    assert message.attributes == {
        ATTR_IDEMPOTENCY_KEY: "acme:doc-7:1",
        "cp-class": "doc-jobs",
        "custom": "kept",
        ATTR_REPLAY_COUNT: "2",
        ATTR_REPLAY_OF: row.message_id,
    }
    row.refresh_from_db()
    assert (row.status, row.replayed_message_id, row.replay_action_id, row.replay_count) == (
        DeadLetterStatus.REPLAYED,
        message.message_id,
        action.pk,
        2,
    )
    assert AuditEvent.objects.filter(action="action.replay.request", actor=operator).exists()
    assert AuditEvent.objects.filter(action="action.replay.finish", result="success").exists()


def test_the_loop_guard_refuses_a_message_at_the_replay_limit(queue, docs, operator):
    ok = dead_letter_row(docs)
    looping = dead_letter_row(docs, replay_count=2)
    done = _run(_replay(operator, DeadLetterFilter(workload_class=docs, ids=(ok.pk, looping.pk))))
    assert done.state == ActionState.PARTIALLY_FAILED
    failed = done.steps.get(state=StepState.FAILED)
    assert failed.key == looping.message_id and "doc-jobs allows 2 (loop guard)" in failed.error
    assert len(waiting(queue, docs)) == 1
    looping.refresh_from_db()
    assert looping.status == DeadLetterStatus.NEW


def test_a_replay_with_nothing_replayable_is_refused(docs, operator):
    row = dead_letter_row(docs, replay_count=2)
    with pytest.raises(ApplicationError) as refused:
        _replay(operator, DeadLetterFilter(workload_class=docs, ids=(row.pk,)))
    assert refused.value.code == "nothing_to_replay"


def test_unknown_ids_are_refused(docs, operator):
    with pytest.raises(NotFoundError):
        _replay(operator, DeadLetterFilter(workload_class=docs, ids=(999999,)))


def test_the_velocity_caps_the_rate(docs, operator):
    _rows(docs, 5)
    slept = []
    action = _replay(operator, DeadLetterFilter(workload_class=docs, error_signature="sig-unavailable"), velocity=4)
    engine.action_run(action_id=action.pk, sleep=slept.append)
    # Chunks of half a second at the cap (2 messages), each followed by its share of the cap.
    assert slept == [0.5, 0.5]
    with pytest.raises(ApplicationError):
        _replay(operator, DeadLetterFilter(workload_class=docs, error_signature="sig-unavailable"), velocity=0)


@pytest.fixture
def published_batches(queue, monkeypatch):
    """The size of each batch the replay hands to the queue (the real queue still publishes it)."""
    sizes = []
    republish = queue.republish

    def spy(spec, messages, **kwargs):
        sizes.append(len(messages))
        return republish(spec, messages, **kwargs)

    monkeypatch.setattr(queue, "republish", spy)
    return sizes


def test_a_replay_publishes_in_chunks_of_the_configured_size(queue, docs, operator, settings, published_batches):
    settings.REPLAY_CHUNK_SIZE = 2
    rows = _rows(docs, 5)
    selection = DeadLetterFilter(workload_class=docs, error_signature="sig-unavailable")
    done = _run(_replay(operator, selection, velocity=1000))
    assert done.state == ActionState.SUCCEEDED and done.progress_done == 5
    assert published_batches == [2, 2, 1]
    assert sorted(m.attributes[ATTR_REPLAY_OF] for m in waiting(queue, docs)) == sorted(r.message_id for r in rows)
    assert DeadLetter.objects.filter(status=DeadLetterStatus.REPLAYED, replay_count=1).count() == 5
    assert {step.result["message_id"] for step in done.steps.all()} == set(
        DeadLetter.objects.values_list("replayed_message_id", flat=True)
    )


def test_a_message_the_queue_refuses_fails_alone_in_its_chunk(queue, docs, operator, published_batches):
    first, bad, last = _rows(docs, 3)
    DeadLetter.objects.filter(pk=bad.pk).update(attributes={"k" * 300: "too long a key for Pub/Sub"})
    selection = DeadLetterFilter(workload_class=docs, error_signature="sig-unavailable")
    done = _run(_replay(operator, selection, velocity=1000))
    assert done.state == ActionState.PARTIALLY_FAILED and (done.progress_done, done.progress_failed) == (2, 1)
    failed = done.steps.get(state=StepState.FAILED)
    assert failed.key == bad.message_id and "over Pub/Sub's limit" in failed.error
    assert sorted(m.attributes[ATTR_REPLAY_OF] for m in waiting(queue, docs)) == sorted(
        [first.message_id, last.message_id]
    )
    assert DeadLetter.objects.get(pk=bad.pk).status == DeadLetterStatus.NEW


def test_cancel_stops_a_replay_between_chunks(queue, docs, operator):
    _rows(docs, 3)
    # At 2 messages/s a chunk is one message.
    action = _replay(operator, DeadLetterFilter(workload_class=docs, error_signature="sig-unavailable"), velocity=2)

    def sleep(_seconds):
        if not Action.objects.get(pk=action.pk).cancel_requested:
            engine.action_cancel(action=action, actor=operator)

    done = engine.action_run(action_id=action.pk, sleep=sleep)
    assert done.state == ActionState.CANCELLED and done.progress_done == 1
    assert len(waiting(queue, docs)) == 1
    assert DeadLetter.objects.filter(status=DeadLetterStatus.NEW).count() == 2


def test_a_filter_replay_takes_only_what_matched_when_it_was_asked_for(queue, docs, operator):
    _rows(docs, 2)
    action = _replay(operator, DeadLetterFilter(workload_class=docs, error_signature="sig-unavailable"))
    dead_letter_row(docs, seen=timezone.now() + timedelta(seconds=5))  # arrives after the request
    assert _run(action).progress_total == 2


class CrashAfterPublishing(replay_run.ReplayHandler):
    """Dies right after publishing the second chunk, before its steps are recorded."""

    calls = 0

    def run_steps(self, action, steps):
        outcomes = super().run_steps(action, steps)
        CrashAfterPublishing.calls += 1
        if CrashAfterPublishing.calls == 2:
            raise SystemExit  # a killed worker: nothing after this line runs
        return outcomes


@pytest.fixture
def crashing_handler(settings):
    settings.REPLAY_CHUNK_SIZE = 2
    original = engine.handler_for("replay")
    CrashAfterPublishing.calls = 0
    engine.register_handler(CrashAfterPublishing())
    yield
    engine.register_handler(original)


def test_a_crash_mid_replay_then_resume_publishes_each_message_exactly_once(queue, docs, operator, crashing_handler):
    rows = _rows(docs, 5)
    action = _replay(operator, DeadLetterFilter(workload_class=docs, error_signature="sig-unavailable"))
    with pytest.raises(SystemExit):
        _run(action)
    action.refresh_from_db()
    assert action.state == ActionState.RUNNING and action.progress_done == 2
    # The worker is gone; once its heartbeat is stale the resume tick hands the action to another.
    Action.objects.filter(pk=action.pk).update(heartbeat_at=timezone.now() - engine.STALE_AFTER * 2)
    assert engine.actions_resume(now=timezone.now()) == [action.pk]
    done = _run(action)
    assert done.state == ActionState.SUCCEEDED and done.progress_done == 5
    published = waiting(queue, docs)
    assert sorted(m.attributes[ATTR_REPLAY_OF] for m in published) == sorted(r.message_id for r in rows)
    assert len(published) == 5
    assert DeadLetter.objects.filter(status=DeadLetterStatus.REPLAYED, replay_count=1).count() == 5


def test_edit_and_replay_validates_keeps_the_original_and_publishes_the_edit(queue, docs, operator):
    row = dead_letter_row(docs, payload={"tenant_id": "acme", "document_id": "doc-9", "revision": 0})
    with pytest.raises(ApplicationError) as invalid:
        services.dead_letter_edit_and_replay(actor=operator, dead_letter=row, payload={"tenant_id": "acme"})
    assert invalid.value.status == 400 and set(invalid.value.extra["errors"]) == {
        "payload.document_id",
        "payload.revision",
    }
    fixed = {"tenant_id": " acme ", "document_id": "doc-9", "revision": 1}
    action = services.dead_letter_edit_and_replay(actor=operator, dead_letter=row, payload=fixed, enqueue=False)
    assert _run(action).state == ActionState.SUCCEEDED
    [message] = waiting(queue, docs)
    assert json.loads(message.data) == {"tenant_id": "acme", "document_id": "doc-9", "revision": 1}  # normalized
    assert message.attributes[ATTR_IDEMPOTENCY_KEY] == row.idempotency_key
    row.refresh_from_db()
    assert row.payload["revision"] == 0 and row.edited_payload["revision"] == 1
    assert row.edited_by == operator and row.status == DeadLetterStatus.REPLAYED
    edit = AuditEvent.objects.get(action="dead_letter.edit")
    assert edit.changes["edited_payload"] == [None, row.edited_payload]


def test_a_truncated_payload_is_replayed_only_once_edited(queue, docs, operator):
    row = dead_letter_row(docs, payload=None, payload_format="text", payload_text='{"tenant', payload_truncated=True)
    assert "was cut at 256 KiB" in services.replay_refusal(row)
    action = services.dead_letter_edit_and_replay(actor=operator, dead_letter=row, payload=event(3), enqueue=False)
    assert _run(action).state == ActionState.SUCCEEDED and len(waiting(queue, docs)) == 1


def test_discard_keeps_rows_and_is_audited(docs, operator):
    keep = dead_letter_row(docs, error_signature="other")
    rows = _rows(docs, 3)
    count = services.dead_letters_discard(
        actor=operator, selection=DeadLetterFilter(workload_class=docs, error_signature="sig-unavailable"), reason="bad"
    )
    assert count == 3 and DeadLetter.objects.count() == 4
    for row in rows:
        row.refresh_from_db()
        assert (row.status, row.discarded_by, row.discard_reason) == (DeadLetterStatus.DISCARDED, operator, "bad")
        assert row.discarded_at is not None
    keep.refresh_from_db()
    assert keep.status == DeadLetterStatus.NEW
    event_ = AuditEvent.objects.get(action="dead_letter.discard")
    assert event_.extra["count"] == 3 and event_.actor == operator
    with pytest.raises(ApplicationError):
        services.dead_letters_discard(actor=operator, selection=DeadLetterFilter(workload_class=docs))


def test_a_discarded_dead_letter_is_not_replayed(docs, operator):
    row = dead_letter_row(docs)
    services.dead_letters_discard(actor=operator, selection=DeadLetterFilter(workload_class=docs, ids=(row.pk,)))
    with pytest.raises(ApplicationError) as refused:
        _replay(operator, DeadLetterFilter(workload_class=docs, ids=(row.pk,)))
    assert "1 discarded" in refused.value.message


def test_a_class_without_queue_resources_fails_each_message_readably(operator):
    from tests.factories import WorkloadClassFactory

    bare = WorkloadClassFactory(slug="no-queue")
    row = dead_letter_row(bare)
    done = _run(_replay(operator, DeadLetterFilter(workload_class=bare, ids=(row.pk,))))
    assert done.state == ActionState.FAILED
    assert "1 of 1 failed" in done.error and "ensure the class's queue resources first" in done.error
    row.refresh_from_db()
    assert row.status == DeadLetterStatus.NEW


def test_overlapping_replays_publish_a_message_once(queue, docs, operator):
    row = dead_letter_row(docs)
    selection = DeadLetterFilter(workload_class=docs, ids=(row.pk,))
    first, second = _replay(operator, selection), _replay(operator, selection)
    assert _run(first).state == ActionState.SUCCEEDED
    late = _run(second)
    assert late.state == ActionState.FAILED and f"replayed by replay #{first.pk} after" in late.error
    assert len(waiting(queue, docs)) == 1
    # Asked for again later, on purpose, it is replayed again (within the loop guard).
    assert _run(_replay(operator, selection)).state == ActionState.SUCCEEDED
    assert len(waiting(queue, docs)) == 1
