"""Seek and snapshots on the local provider: the confirmation with its whole-subscription effect,
seek to a time, a snapshot before a deploy and a seek back to it, and the failure paths."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.workloads.deadletter_helpers import make_class, waiting
from workloads.errors import ApplicationError
from workloads.models import Action, ActionState, AuditEvent
from workloads.providers import get_providers
from workloads.providers.base import OutboundMessage
from workloads.providers.local.models import LocalSnapshot
from workloads.providers.specs import queue_spec
from workloads.services import actions as engine
from workloads.services.subscriptions import seek_effect, snapshot_create_request, subscription_seek_request


@pytest.fixture
def queue(db):
    return get_providers().queue


@pytest.fixture
def docs(queue):
    return make_class(queue, "doc-jobs")


def _publish(queue, docs, *bodies):
    return queue.publish(queue_spec(docs), [OutboundMessage(body) for body in bodies])


def _run(action):
    return engine.action_run(action_id=action.pk)


def test_a_seek_is_refused_without_confirmation_and_says_what_it_would_do(docs, operator):
    moment = timezone.now()
    # The text names how long ago `moment` was, which may tick over a second during the request.
    before = seek_effect(workload_class=docs, to_time=moment)
    with pytest.raises(ApplicationError) as refused:
        subscription_seek_request(actor=operator, workload_class=docs, to_time=moment)
    effect = refused.value.extra["effect"]
    assert refused.value.code == "confirmation_required" and refused.value.status == 400
    assert "every message published after" in effect and "including ones already processed" in effect
    assert "every earlier one is marked acknowledged" in effect and docs.subscription in effect
    assert effect in (before, seek_effect(workload_class=docs, to_time=moment))
    assert not AuditEvent.objects.filter(action__startswith="action.seek").exists()


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"to_time": timezone.now(), "snapshot": "snap-1"}, {"snapshot": "x"}, {"snapshot": "goog-snap"}],
    ids=["neither", "both", "short-name", "goog-prefix"],
)
def test_a_seek_needs_exactly_one_valid_target(docs, operator, kwargs):
    with pytest.raises(ApplicationError) as refused:
        subscription_seek_request(actor=operator, workload_class=docs, confirm=True, **kwargs)
    assert refused.value.status == 400


def test_seek_to_a_time_redelivers_what_was_published_after_it(queue, docs, operator):
    _publish(queue, docs, b"before")
    assert len(waiting(queue, docs)) == 1
    moment = timezone.now()
    _publish(queue, docs, b"after-1", b"after-2")
    assert len(waiting(queue, docs)) == 2  # processed (acked)
    action = subscription_seek_request(
        actor=operator, workload_class=docs, to_time=moment, confirm=True, reason="bad deploy", enqueue=False
    )
    assert action.parameters["effect"].startswith("Seek ")
    done = _run(action)
    assert done.state == ActionState.SUCCEEDED
    assert sorted(m.data for m in waiting(queue, docs)) == [b"after-1", b"after-2"]
    assert AuditEvent.objects.filter(action="action.seek.request", actor=operator).exists()


def test_a_snapshot_before_a_deploy_and_a_seek_back_to_it(queue, docs, operator):
    _publish(queue, docs, b"pending-at-snapshot")
    snapshot = _run(snapshot_create_request(actor=operator, workload_class=docs, name="before-deploy-7", enqueue=False))
    assert snapshot.state == ActionState.SUCCEEDED
    [step] = snapshot.steps.all()
    assert step.result["name"].endswith("/snapshots/before-deploy-7") and step.result["expire_time"]
    _publish(queue, docs, b"after-deploy")
    assert len(waiting(queue, docs)) == 2  # the bad deploy "processed" both
    seek = subscription_seek_request(
        actor=operator, workload_class=docs, snapshot="before-deploy-7", confirm=True, enqueue=False
    )
    assert _run(seek).state == ActionState.SUCCEEDED
    assert sorted(m.data for m in waiting(queue, docs)) == [b"after-deploy", b"pending-at-snapshot"]


def test_a_snapshot_gets_a_default_name_and_a_taken_name_fails_readably(docs, operator):
    first = snapshot_create_request(actor=operator, workload_class=docs, enqueue=False)
    assert first.parameters["name"].startswith("before-deploy-doc-jobs-")
    assert _run(first).state == ActionState.SUCCEEDED
    again = _run(snapshot_create_request(actor=operator, workload_class=docs, name=first.parameters["name"]))
    assert again.state == ActionState.FAILED and "already exists" in again.error


def test_a_seek_to_an_unknown_snapshot_is_refused_at_once_naming_it(queue, docs, operator):
    queue.create_snapshot(queue_spec(docs), "before-deploy-1")
    for confirm in (False, True):
        with pytest.raises(ApplicationError) as refused:
            subscription_seek_request(actor=operator, workload_class=docs, snapshot="never-taken", confirm=confirm)
        assert refused.value.code == "unknown_snapshot" and refused.value.status == 400
        assert "'never-taken'" in refused.value.message and "before-deploy-1" in refused.value.message
        assert refused.value.extra["snapshots"] == ["before-deploy-1"]
    assert not Action.objects.exists()


def test_a_snapshot_that_expired_after_the_request_fails_the_seek_readably(queue, docs, operator):
    queue.create_snapshot(queue_spec(docs), "short-lived")
    action = subscription_seek_request(
        actor=operator, workload_class=docs, snapshot="short-lived", confirm=True, enqueue=False
    )
    LocalSnapshot.objects.filter(name__endswith="/snapshots/short-lived").delete()
    done = _run(action)
    assert done.state == ActionState.FAILED and "does not exist" in done.error


def test_a_seek_to_the_future_acks_the_backlog(queue, docs, operator):
    _publish(queue, docs, b"backlog-1", b"backlog-2")
    action = subscription_seek_request(
        actor=operator, workload_class=docs, to_time=timezone.now() + timedelta(seconds=1), confirm=True
    )
    assert _run(action).state == ActionState.SUCCEEDED
    assert waiting(queue, docs) == []


def test_a_snapshot_whose_worker_died_after_taking_it_finishes_on_resume(docs, operator):
    from workloads.models import Action
    from workloads.services.subscriptions import SnapshotHandler

    class DiesAfterTakingIt(SnapshotHandler):
        def run_step(self, action, step):
            super().run_step(action, step)
            raise SystemExit  # killed before the step's result was recorded

    original = engine.handler_for("snapshot")
    engine.register_handler(DiesAfterTakingIt())
    try:
        action = snapshot_create_request(actor=operator, workload_class=docs, name="before-deploy-9", enqueue=False)
        with pytest.raises(SystemExit):
            _run(action)
    finally:
        engine.register_handler(original)
    Action.objects.filter(pk=action.pk).update(heartbeat_at=timezone.now() - engine.STALE_AFTER * 2)
    done = _run(action)
    assert done.state == ActionState.SUCCEEDED and done.attempts == 2
    assert "already existed" in done.steps.get().result["note"]


def test_a_seek_preview_says_how_far_dedup_protects_and_a_seek_past_it_needs_acknowledging(docs, operator):
    from workloads.models import DeadLetter, WorkOutcome, WorkResult

    now = timezone.now()
    docs.dedup_ttl_seconds = 86400
    docs.save()

    def completed(key, hours_ago):
        WorkResult.objects.create(
            workload_class=docs,
            idempotency_key=key,
            message_id=key,
            outcome=WorkOutcome.SUCCEEDED,
            attempts=1,
            completed_at=now - timedelta(hours=hours_ago),
        )

    completed("k-recent", 2)  # inside the day dedup protects: skipped when redelivered
    completed("k-old-1", 30)  # completed before the window: runs again
    completed("k-old-2", 40)
    completed("k-too-old", 80)  # before the seek's time: not redelivered at all
    DeadLetter.objects.create(
        workload_class=docs,
        message_id="dl-1",
        last_message_id="dl-1",
        first_seen=now - timedelta(hours=20),
        last_seen=now - timedelta(hours=20),
        mirrored_at=now,
        error_type="Unavailable",
        error_signature="sig",
    )
    moment = now - timedelta(hours=48)
    with pytest.raises(ApplicationError) as refused:
        subscription_seek_request(actor=operator, workload_class=docs, to_time=moment)
    impact = refused.value.extra["impact"]
    assert (impact["completed_skipped"], impact["completed_rerun"], impact["dead_lettered"]) == (1, 2, 1)
    assert impact["unprotected"] is True and impact["dedup_ttl_seconds"] == 86400
    effect = refused.value.extra["effect"]
    assert "Deduplication protects work completed in the last 1 d" in effect
    assert "2 completed keys from before" in effect and "will run again" in effect
    assert "1 dead-lettered message published since then will be delivered to the workers again" in effect

    with pytest.raises(ApplicationError) as unacknowledged:
        subscription_seek_request(actor=operator, workload_class=docs, to_time=moment, confirm=True)
    assert unacknowledged.value.code == "rerun_acknowledgement_required"
    assert not Action.objects.filter(kind="seek").exists()
    action = subscription_seek_request(
        actor=operator, workload_class=docs, to_time=moment, confirm=True, accept_rerun=True, enqueue=False
    )
    assert action.parameters["impact"]["completed_rerun"] == 2 and action.parameters["accept_rerun"] is True

    # Inside the window nothing runs again: confirming is enough.
    recent = subscription_seek_request(
        actor=operator, workload_class=docs, to_time=now - timedelta(hours=3), confirm=True, enqueue=False
    )
    assert recent.parameters["impact"]["unprotected"] is False


def test_a_seek_to_a_snapshot_holding_work_older_than_dedup_needs_acknowledging(queue, docs, operator):
    from workloads.models import WorkOutcome, WorkResult
    from workloads.providers.local.models import LocalDelivery, LocalMessage

    now = timezone.now()
    docs.dedup_ttl_seconds = 86400
    docs.save()
    # A fresh snapshot of an empty backlog reaches back to its own moment: confirming is enough.
    queue.create_snapshot(queue_spec(docs), "fresh")
    subscription_seek_request(actor=operator, workload_class=docs, snapshot="fresh", confirm=True, enqueue=False)

    # A message left unacknowledged for two days: a snapshot keeps it, and a seek back to the
    # snapshot redelivers everything completed since it was published.
    _publish(queue, docs, b"stuck")
    two_days_ago = now - timedelta(hours=48)
    LocalMessage.objects.update(published_at=two_days_ago)
    LocalDelivery.objects.update(published_at=two_days_ago)
    for key, hours_ago in (("k-recent", 2), ("k-old", 30)):
        WorkResult.objects.create(
            workload_class=docs,
            idempotency_key=key,
            message_id=key,
            outcome=WorkOutcome.SUCCEEDED,
            attempts=1,
            completed_at=now - timedelta(hours=hours_ago),
        )
    queue.create_snapshot(queue_spec(docs), "with-backlog")
    with pytest.raises(ApplicationError) as unacknowledged:
        subscription_seek_request(actor=operator, workload_class=docs, snapshot="with-backlog", confirm=True)
    assert unacknowledged.value.code == "rerun_acknowledgement_required"
    impact = unacknowledged.value.extra["impact"]
    assert (impact["completed_skipped"], impact["completed_rerun"], impact["unprotected"]) == (1, 1, True)
    assert "1 completed key from before" in unacknowledged.value.extra["effect"]
    action = subscription_seek_request(
        actor=operator, workload_class=docs, snapshot="with-backlog", confirm=True, accept_rerun=True, enqueue=False
    )
    assert action.parameters["accept_rerun"] is True and action.parameters["impact"]["completed_rerun"] == 1
