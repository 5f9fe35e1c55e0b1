"""Bounded state: every table that grows with traffic has a prune and a retention setting.

`PRUNES` lists each prune with the models whose rows it removes, the setting that says how long
rows stay, and the beat task that runs it; `NOT_PRUNED` names every other model and why it does
not grow with traffic. tests/workloads/test_pruning.py checks that each installed model is in
exactly one of the two and that each prune's task is scheduled in CELERY_BEAT_SCHEDULE, so a new
table cannot be forgotten. Retention settings and defaults: docs/operations.md, "Retention".

Every prune deletes in small batches (`delete_in_batches`), each in its own short transaction, and
keeps whatever is still needed: unresolved dead letters, unfinished actions, successes still
deduplicating, idempotency keys still within their class's dedup TTL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db.models import Q

from workloads.batch_delete import delete_in_batches
from workloads.models import (
    Action,
    ActionStep,
    AuditEvent,
    DeadLetter,
    DeadLetterStatus,
    IncidentMode,
    PoolHold,
    WorkResult,
)
from workloads.models.actions import FINAL_ACTION_STATES
from workloads.models.incidents import OPEN_HOLD_STATES
from workloads.providers.local import local_queue_prune
from workloads.providers.local.prune import local_pool_changes_prune, local_worker_reports_prune
from workloads.services.deployments import deployments_prune
from workloads.services.ingestion import idempotency_records_prune
from workloads.services.notifications import notifications_prune

logger = logging.getLogger(__name__)

PRUNE_TASK = "workloads.tasks.prune"


@dataclass(frozen=True)
class Prune:
    name: str
    models: tuple[str, ...]  # labels of the models whose rows it removes
    retention: str  # the setting (or field) that says how long rows stay
    task: str = PRUNE_TASK  # the beat task that runs it
    run: Callable[[datetime, int], int | dict[str, int]] | None = None  # (now, batch_size); None: its task's own


def _days(setting: str) -> timedelta:
    return timedelta(days=getattr(settings, setting))


def work_results_prune(*, now: datetime, batch_size: int) -> int:
    """Delete work results older than WORK_RESULT_RETENTION_DAYS. Its minimum (8 days) is longer
    than the longest dedup TTL (7 days), so a success that still deduplicates is never removed."""
    old = WorkResult.objects.filter(completed_at__lt=now - _days("WORK_RESULT_RETENTION_DAYS"))
    return delete_in_batches(old, batch_size=batch_size)


def actions_prune(*, now: datetime, batch_size: int) -> int:
    """Delete finished actions (and their steps) that finished more than ACTION_RETENTION_DAYS ago.
    Pending and running ones stay whatever their age, and so does an action an open pause or incident
    still refers to (the screens show it, a restore reads it)."""
    cutoff = now - _days("ACTION_RETENTION_DAYS")
    open_holds = PoolHold.objects.filter(state__in=OPEN_HOLD_STATES)
    open_incidents = IncidentMode.objects.filter(ended_at__isnull=True)
    still_referred_to = [
        open_holds.filter(pause_action__isnull=False).values("pause_action"),
        open_holds.filter(restore_action__isnull=False).values("restore_action"),
        open_incidents.filter(enter_action__isnull=False).values("enter_action"),
        open_incidents.filter(exit_action__isnull=False).values("exit_action"),
    ]
    old = Action.objects.filter(state__in=FINAL_ACTION_STATES, finished_at__lt=cutoff)
    for referred in still_referred_to:
        old = old.exclude(pk__in=referred)
    # Steps first, in batches of their own: one replay can have thousands of steps, and deleting
    # its action would cascade to all of them in one statement.
    delete_in_batches(ActionStep.objects.filter(action__in=old.values("pk")), batch_size=batch_size)
    return delete_in_batches(old, batch_size=batch_size)


RESOLVED_DEAD_LETTER_STATUSES = (DeadLetterStatus.REPLAYED, DeadLetterStatus.DISCARDED)


def dead_letters_prune(*, now: datetime, batch_size: int) -> int:
    """Delete dead letters replayed or discarded more than DEAD_LETTER_RETENTION_DAYS ago (and not
    seen again since). New and held ones are never pruned: the mirror is their only copy."""
    cutoff = now - _days("DEAD_LETTER_RETENTION_DAYS")
    resolved = DeadLetter.objects.filter(status__in=RESOLVED_DEAD_LETTER_STATUSES, last_seen__lt=cutoff).filter(
        Q(status=DeadLetterStatus.REPLAYED, replayed_at__lt=cutoff)
        | Q(status=DeadLetterStatus.DISCARDED, discarded_at__lt=cutoff)
    )
    return delete_in_batches(resolved, batch_size=batch_size)


def audit_events_prune(*, now: datetime, batch_size: int) -> int:
    """Delete audit events older than AUDIT_RETENTION_DAYS (automation writes them too)."""
    old = AuditEvent.objects.filter(occurred_at__lt=now - _days("AUDIT_RETENTION_DAYS"))
    return delete_in_batches(old, batch_size=batch_size)


def sessions_prune(*, now: datetime, batch_size: int) -> int:
    """Delete expired login sessions (what `manage.py clearsessions` does, in batches)."""
    return delete_in_batches(Session.objects.filter(expire_date__lt=now), batch_size=batch_size)


PRUNES: tuple[Prune, ...] = (
    Prune(
        "idempotency-records",
        ("workloads.IdempotencyRecord",),
        "each class's dedup_ttl_seconds",
        run=lambda now, batch: idempotency_records_prune(now=now, batch_size=batch),
    ),
    Prune(
        "local-queue",
        (
            "localcloud.LocalMessage",
            "localcloud.LocalDelivery",
            "localcloud.LocalSnapshot",
            "localcloud.LocalSnapshotMessage",
        ),
        "each subscription's message_retention_seconds",
        run=lambda now, batch: local_queue_prune(now=now, batch_size=batch),
    ),
    Prune(
        "local-worker-reports",
        ("localcloud.LocalWorkerReport",),
        "LOCAL_WORKER_REPORT_RETENTION_DAYS",
        run=lambda now, batch: local_worker_reports_prune(
            now=now, retention=_days("LOCAL_WORKER_REPORT_RETENTION_DAYS"), batch_size=batch
        ),
    ),
    Prune(
        "local-pool-changes",
        ("localcloud.LocalPoolChange",),
        "LOCAL_POOL_CHANGE_RETENTION_DAYS",
        run=lambda now, batch: local_pool_changes_prune(
            now=now, retention=_days("LOCAL_POOL_CHANGE_RETENTION_DAYS"), batch_size=batch
        ),
    ),
    Prune(
        "work-results",
        ("workloads.WorkResult",),
        "WORK_RESULT_RETENTION_DAYS",
        run=lambda now, batch: work_results_prune(now=now, batch_size=batch),
    ),
    Prune(
        "actions",
        ("workloads.Action", "workloads.ActionStep"),
        "ACTION_RETENTION_DAYS",
        run=lambda now, batch: actions_prune(now=now, batch_size=batch),
    ),
    Prune(
        "deployments",
        ("workloads.Deployment",),
        "DEPLOYMENT_RETENTION_DAYS",
        run=lambda now, batch: deployments_prune(now=now, batch_size=batch),
    ),
    Prune(
        "dead-letters",
        ("workloads.DeadLetter",),
        "DEAD_LETTER_RETENTION_DAYS",
        run=lambda now, batch: dead_letters_prune(now=now, batch_size=batch),
    ),
    Prune(
        "audit-events",
        ("workloads.AuditEvent",),
        "AUDIT_RETENTION_DAYS",
        run=lambda now, batch: audit_events_prune(now=now, batch_size=batch),
    ),
    Prune(
        "sessions",
        ("sessions.Session",),
        "SESSION_COOKIE_AGE",
        run=lambda now, batch: sessions_prune(now=now, batch_size=batch),
    ),
    Prune(
        "notifications",
        (
            "workloads.Notification",
            "workloads.NotificationDelivery",
            "workloads.SloIncident",
            "workloads.Silence",
        ),
        "NOTIFICATION_RETENTION_DAYS",
        run=lambda now, batch: notifications_prune(now=now, batch_size=batch),
    ),
    # Folded into hourly rows, then deleted, by the downsample tick (services/rollups.py).
    Prune(
        "telemetry",
        ("workloads.MetricRollup", "workloads.PollRun", "workloads.SloAlert"),
        "TELEMETRY_MINUTE_RETENTION_DAYS, TELEMETRY_HOUR_RETENTION_DAYS, TELEMETRY_POLL_RUN_RETENTION_DAYS",
        task="workloads.tasks.telemetry_downsample",
    ),
)

# Every other model, and why its table does not grow with traffic.
NOT_PRUNED: dict[str, str] = {
    "workloads.WorkloadClass": "one row per class",
    "workloads.Environment": "one row per environment (prod, staging...)",
    "workloads.EnvironmentRole": "at most one row per user and environment, changed in place",
    "workloads.CostRates": "one row per rate card",
    "workloads.Slo": "a few per class",
    "workloads.SchedulePolicy": "a few per class",
    "workloads.TriageRule": "written by operators, a few per class",
    "workloads.MigrationPlan": "written by people, a few per class moved",
    "workloads.ControlSignal": "one per pause, resume or incident of an observed runtime",
    "workloads.MigrationDecision": "one per phase change a person makes, a handful per plan",
    "workloads.ApiToken": "issued by admins",
    "workloads.UserIdentity": "one row per user, updated in place at each sign-in",
    "workloads.ClassTelemetry": "one row per class, updated in place",
    "workloads.ClassCounters": "one row per class, updated in place",
    "workloads.DeadLetterSyncState": "one row per class, updated in place",
    "workloads.SloStatus": "one row per SLO, updated in place",
    "workloads.PoolControl": "one row per class, updated in place",
    "workloads.IncidentMode": "one per incident declared by an operator: the incident history",
    "workloads.PoolHold": "one per pause an operator or an incident made: the pause history",
    "workloads.NotificationChannel": "configured by admins",
    "workloads.UserPreference": "at most one row per user",
    "workloads.NotificationRoute": "configured by admins",
    "localcloud.LocalTopic": "local provider: a few per class",
    "localcloud.LocalSubscription": "local provider: a few per class",
    "localcloud.LocalWorkerPool": "local provider: one per class",
    "auth.User": "people",
    "auth.Group": "roles",
    "auth.Permission": "one per model and permission",
    "contenttypes.ContentType": "one per model",
    "admin.LogEntry": "one per change an admin makes by hand in /admin/",
}


def prunes_run(*, now: datetime, batch_size: int | None = None) -> dict[str, int | dict[str, int]]:
    """Run every prune the `prune` beat task owns and return what each removed. One that fails is
    logged and the others still run; the next tick retries it."""
    batch_size = batch_size or settings.PRUNE_BATCH_SIZE
    removed: dict[str, int | dict[str, int]] = {}
    for prune in PRUNES:
        if prune.task != PRUNE_TASK:
            continue
        try:
            removed[prune.name] = prune.run(now, batch_size)
        except Exception:
            logger.exception("prune %s failed", prune.name)
    return removed
