"""Bounded state: every model is either pruned by a scheduled task or declared not to grow with
traffic, and each prune removes old rows while keeping recent and still-needed ones, in batches."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.celery import app as celery_app
from tests.factories import WorkloadClassFactory
from workloads import tasks
from workloads.batch_delete import delete_in_batches
from workloads.models import (
    Action,
    ActionKind,
    ActionState,
    ActionStep,
    AuditEvent,
    DeadLetter,
    DeadLetterStatus,
    HoldState,
    IdempotencyRecord,
    IncidentMode,
    PollRun,
    PoolHold,
    StepState,
    WorkOutcome,
    WorkResult,
)
from workloads.providers.local.models import (
    LocalPoolChange,
    LocalWorkerPool,
    LocalWorkerReport,
)
from workloads.services.pruning import NOT_PRUNED, PRUNE_TASK, PRUNES, prunes_run
from workloads.services.rollups import rollups_downsample

# What the architecture issue names as growing with traffic: these must never slip into NOT_PRUNED.
GROWS_WITH_TRAFFIC = {
    "workloads.IdempotencyRecord",
    "localcloud.LocalMessage",
    "localcloud.LocalDelivery",
    "localcloud.LocalWorkerReport",
    "workloads.WorkResult",
    "workloads.Action",
    "workloads.ActionStep",
    "workloads.DeadLetter",
    "workloads.PollRun",
    "workloads.MetricRollup",
}
DAY = timedelta(days=1)


def _pruned_models() -> dict[str, str]:
    return {label: prune.name for prune in PRUNES for label in prune.models}


def test_every_installed_model_is_pruned_or_declared_not_to_grow():
    pruned = _pruned_models()
    installed = {model._meta.label for model in apps.get_models()}
    undeclared = installed - set(pruned) - set(NOT_PRUNED)
    assert not undeclared, (
        f"{sorted(undeclared)}: add a prune to workloads.services.pruning.PRUNES (a table that grows with "
        "traffic) or name it in NOT_PRUNED with the reason it stays small"
    )
    assert not set(pruned) & set(NOT_PRUNED)
    assert not (set(pruned) | set(NOT_PRUNED)) - installed, "a declared model no longer exists"
    assert all(NOT_PRUNED.values())


def test_the_tables_that_grow_with_traffic_are_pruned():
    assert GROWS_WITH_TRAFFIC <= set(_pruned_models())


@pytest.mark.parametrize("prune", PRUNES, ids=lambda prune: prune.name)
def test_each_prune_runs_from_a_registered_task_that_beat_schedules(prune):
    celery_app.loader.import_default_modules()  # what a worker does at start: autodiscovers the tasks
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert prune.task in scheduled
    assert prune.task in celery_app.tasks
    assert prune.retention
    assert (prune.run is not None) == (prune.task == PRUNE_TASK)


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def docs(db):
    return WorkloadClassFactory(slug="docs")


def test_work_results_go_after_their_retention_and_a_success_that_still_deduplicates_stays(docs, now):
    def result(key, outcome, age):
        return WorkResult.objects.create(
            workload_class=docs,
            idempotency_key=key,
            message_id=key,
            outcome=outcome,
            attempts=1,
            completed_at=now - age,
        )

    result("old", WorkOutcome.FAILED, (settings.WORK_RESULT_RETENTION_DAYS + 1) * DAY)
    result("recent", WorkOutcome.SUCCEEDED, 7 * DAY)  # the longest dedup TTL: still deduplicating
    assert settings.WORK_RESULT_RETENTION_DAYS > 7
    assert prunes_run(now=now)["work-results"] == 1
    assert list(WorkResult.objects.values_list("idempotency_key", flat=True)) == ["recent"]


def _action(state, finished_days_ago, now, steps=3):
    action = Action.objects.create(
        kind=ActionKind.REPLAY,
        state=state,
        finished_at=None if finished_days_ago is None else now - finished_days_ago * DAY,
    )
    ActionStep.objects.bulk_create(
        ActionStep(action=action, position=i, key=f"m{i}", state=StepState.DONE) for i in range(steps)
    )
    return action


def test_finished_actions_go_with_their_steps_and_unfinished_or_needed_ones_stay(docs, now):
    old = settings.ACTION_RETENTION_DAYS + 1
    gone = _action(ActionState.SUCCEEDED, old, now, steps=5)
    failed = _action(ActionState.FAILED, old, now)
    running = _action(ActionState.RUNNING, None, now)
    Action.objects.filter(pk=running.pk).update(created_at=now - old * 2 * DAY)
    recent = _action(ActionState.SUCCEEDED, 1, now)
    paused_by = _action(ActionState.SUCCEEDED, old, now)
    PoolHold.objects.create(
        workload_class=docs,
        reason="incident",
        expires_at=now + DAY,
        state=HoldState.ACTIVE,
        bounds_min=0,
        bounds_max=1,
        bounds_source="baseline",
        created_by_label="ops",
        created_at=now - DAY,
        pause_action=paused_by,
    )

    entered_by = _action(ActionState.SUCCEEDED, old, now)
    IncidentMode.objects.create(
        reason="outage", started_by_label="ops", started_at=now - DAY, expires_at=now + DAY, enter_action=entered_by
    )

    assert prunes_run(now=now, batch_size=2)["actions"] == 2
    kept = {running.pk, recent.pk, paused_by.pk, entered_by.pk}
    assert set(Action.objects.values_list("pk", flat=True)) == kept
    assert not ActionStep.objects.filter(action_id__in=[gone.pk, failed.pk]).exists()
    assert ActionStep.objects.filter(action=running).count() == 3


def _dead_letter(docs, name, now, *, status, resolved_days_ago=None, last_seen_days_ago):
    resolved_at = None if resolved_days_ago is None else now - resolved_days_ago * DAY
    return DeadLetter.objects.create(
        workload_class=docs,
        message_id=name,
        last_message_id=name,
        status=status,
        first_seen=now - last_seen_days_ago * DAY,
        last_seen=now - last_seen_days_ago * DAY,
        mirrored_at=now - last_seen_days_ago * DAY,
        replayed_at=resolved_at if status == DeadLetterStatus.REPLAYED else None,
        discarded_at=resolved_at if status == DeadLetterStatus.DISCARDED else None,
    )


def test_resolved_dead_letters_go_after_their_retention_and_unresolved_ones_never(docs, now):
    old = settings.DEAD_LETTER_RETENTION_DAYS + 1
    _dead_letter(docs, "replayed", now, status=DeadLetterStatus.REPLAYED, resolved_days_ago=old, last_seen_days_ago=old)
    _dead_letter(
        docs, "discarded", now, status=DeadLetterStatus.DISCARDED, resolved_days_ago=old, last_seen_days_ago=old
    )
    _dead_letter(docs, "new", now, status=DeadLetterStatus.NEW, last_seen_days_ago=old * 10)
    _dead_letter(docs, "held", now, status=DeadLetterStatus.HELD, last_seen_days_ago=old * 10)
    _dead_letter(
        docs, "just-replayed", now, status=DeadLetterStatus.REPLAYED, resolved_days_ago=1, last_seen_days_ago=old
    )
    _dead_letter(
        docs, "back-again", now, status=DeadLetterStatus.DISCARDED, resolved_days_ago=old, last_seen_days_ago=1
    )

    assert prunes_run(now=now)["dead-letters"] == 2
    left = set(DeadLetter.objects.values_list("message_id", flat=True))
    assert left == {"new", "held", "just-replayed", "back-again"}


def test_old_audit_events_and_expired_sessions_go(db, now):
    AuditEvent.objects.create(
        actor_label="ops", action="old", occurred_at=now - (settings.AUDIT_RETENTION_DAYS + 1) * DAY
    )
    AuditEvent.objects.create(actor_label="ops", action="recent", occurred_at=now - DAY)
    Session.objects.create(session_key="expired", session_data="", expire_date=now - timedelta(seconds=1))
    Session.objects.create(session_key="live", session_data="", expire_date=now + DAY)

    removed = prunes_run(now=now)
    assert removed["audit-events"] == 1 and removed["sessions"] == 1
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["recent"]
    assert list(Session.objects.values_list("session_key", flat=True)) == ["live"]


def test_old_worker_reports_go_with_their_buckets(db, now):
    def report(age):
        end = now - age
        return LocalWorkerReport.objects.create(
            slug="docs",
            interval_start=end - timedelta(minutes=1),
            interval_end=end,
            interval_end_ms=0,
            latency_buckets=[0, 0, 0, 2],
        )

    report((settings.LOCAL_WORKER_REPORT_RETENTION_DAYS + 1) * DAY)
    recent = report(timedelta(minutes=5))
    assert prunes_run(now=now)["local-worker-reports"] == 1
    assert list(LocalWorkerReport.objects.values_list("pk", "latency_buckets")) == [(recent.pk, [0, 0, 0, 2])]


def test_old_pool_changes_go_but_the_count_in_force_when_history_begins_stays(db, now):
    retention = settings.LOCAL_POOL_CHANGE_RETENTION_DAYS
    pools = [
        LocalWorkerPool.objects.create(name=f"pools/{name}", slug=name, update_time=now, created_at=now)
        for name in ("docs", "mail")
    ]
    for pool in pools:
        for days, count in ((retention + 3, 1), (retention + 2, 2), (retention + 1, 3), (1, 4)):
            LocalPoolChange.objects.create(
                pool=pool, instance_count=count, generation=count, changed_at=now - days * DAY
            )
    quiet = LocalWorkerPool.objects.create(name="pools/quiet", slug="quiet", update_time=now, created_at=now)
    LocalPoolChange.objects.create(pool=quiet, instance_count=2, generation=1, changed_at=now - retention * 9 * DAY)

    assert prunes_run(now=now, batch_size=1)["local-pool-changes"] == 4
    for pool in pools:
        assert list(pool.changes.order_by("changed_at").values_list("instance_count", flat=True)) == [3, 4]
    assert quiet.changes.count() == 1


def test_the_beat_task_runs_the_prunes(docs, now):
    IdempotencyRecord.objects.create(
        workload_class=docs, key="old", payload_fingerprint="x", created_at=now - DAY, expires_at=now - DAY / 2
    )
    IdempotencyRecord.objects.create(
        workload_class=docs, key="live", payload_fingerprint="x", created_at=now, expires_at=now + DAY
    )
    tasks.prune()
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["live"]


def test_deletes_go_in_bounded_batches_each_reapplying_the_filter(db, now):
    AuditEvent.objects.bulk_create(AuditEvent(actor_label="ops", action=f"a{i}", occurred_at=now) for i in range(5))
    AuditEvent.objects.create(actor_label="ops", action="keep", occurred_at=now)
    with CaptureQueriesContext(connection) as queries:
        deleted = delete_in_batches(AuditEvent.objects.exclude(action="keep"), batch_size=2)
    assert deleted == 5
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3
    assert all('"action"' in sql for sql in deletes)  # each batch re-checks the filter
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["keep"]


def test_the_downsample_deletes_old_poll_runs_in_batches_too(db, now, settings):
    settings.PRUNE_BATCH_SIZE = 1
    old = now - (settings.TELEMETRY_POLL_RUN_RETENTION_DAYS + 1) * DAY
    for metric in ("backlog", "instances", "latency"):
        PollRun.objects.create(metric=metric, started_at=old, window_start=old, window_end=old)
    PollRun.objects.create(metric="backlog", started_at=now, window_start=now, window_end=now)
    with CaptureQueriesContext(connection) as queries:
        assert rollups_downsample(now=now).poll_runs_deleted == 3
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('DELETE FROM "workloads_pollrun"')]
    assert len(deletes) == 3
    assert PollRun.objects.count() == 1
