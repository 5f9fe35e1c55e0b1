"""Pausing one class's worker pool (a hold at 0 instances), overriding its count (a hold at
another count: the controller leaves it alone) and resuming it, each until resumed or expired.
The holds and their actions are incident mode's too: workloads/services/pool_holds.py."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from workloads.errors import ApplicationError
from workloads.models import ActionKind, HoldState, PoolHold, WorkloadClass
from workloads.models.incidents import OPEN_HOLD_STATES
from workloads.selectors.incidents import retention_warning
from workloads.services.audit import audit_event_record
from workloads.services.pool_holds import (
    HoldResult,
    cancel_if_open,
    checked_expiry,
    checked_instances,
    checked_reason,
    hold_create,
    holds_end,
    holds_pause_request,
    holds_restore_request,
)


def open_hold(workload_class: WorkloadClass) -> PoolHold | None:
    return PoolHold.objects.filter(workload_class=workload_class, state__in=OPEN_HOLD_STATES).first()


@transaction.atomic
def pool_pause(
    *,
    workload_class: WorkloadClass,
    actor,
    reason: str,
    expires_in: timedelta | None = None,
    instances: int = 0,
    now: datetime | None = None,
) -> HoldResult:
    """Pause one class's pool until resumed or expired; with `instances` > 0, hold it at that count
    instead (a manual override: the controller leaves it alone, the restore rule is the same).
    Already held (on its own or by incident mode): that hold is returned and nothing new happens."""
    reason = checked_reason(reason)
    expires_in = checked_expiry(expires_in)
    instances = checked_instances(workload_class, instances)
    now = now or timezone.now()
    if not workload_class.runs_on_worker_pool:
        raise ApplicationError(
            f"{workload_class.slug} runs on an observed runtime ({workload_class.get_runtime_display()}): "
            "the control plane has no pool of it to pause; send it a control signal instead "
            f"(POST /api/v1/classes/{workload_class.slug}/control-signals/).",
            code="observed_runtime",
        )
    WorkloadClass.objects.select_for_update().filter(pk=workload_class.pk).first()
    existing = open_hold(workload_class)
    if existing is not None:
        return HoldResult(existing, changed=False)
    hold = hold_create(
        workload_class=workload_class,
        incident=None,
        actor=actor,
        reason=reason,
        expires_at=now + expires_in,
        now=now,
        hold_count=instances,
    )
    if hold is None:
        return HoldResult(open_hold(workload_class), changed=False)
    holds_pause_request(
        kind=ActionKind.OVERRIDE if instances else ActionKind.PAUSE,
        holds=[hold],
        actor=actor,
        reason=reason,
        workload_class=workload_class,
        target=f"{workload_class.slug} worker pool",
    )
    hold.refresh_from_db()
    audit_event_record(
        actor=actor,
        action="pool.override" if instances else "pool.pause",
        target=hold,
        target_repr=f"{workload_class.slug} worker pool",
        workload_class_slug=workload_class.slug,
        extra={
            "reason": reason,
            "instances": instances,
            "expires_at": hold.expires_at,
            "warning": hold.retention_warning,
        },
    )
    return HoldResult(hold, changed=True, warnings=[hold.retention_warning] if hold.retention_warning else [])


@transaction.atomic
def pool_resume(
    *, workload_class: WorkloadClass, actor, reason: str = "", expired: bool = False, now: datetime | None = None
) -> HoldResult:
    """Resume a paused class (also one paused by incident mode, which otherwise stays active).
    Safe to retry: a hold being restored is left to its action, a failed restore is retried, and
    a class with nothing open returns its last hold unchanged."""
    now = now or timezone.now()
    WorkloadClass.objects.select_for_update().filter(pk=workload_class.pk).first()
    hold = open_hold(workload_class)
    if hold is None:
        last = PoolHold.objects.filter(workload_class=workload_class).first()
        if last is None:
            raise ApplicationError(f"{workload_class.slug} is not paused.", code="not_paused")
        return HoldResult(last, changed=False)
    if hold.state == HoldState.RESTORING:
        if hold.restore_action is not None and not hold.restore_action.is_final:
            return HoldResult(hold, changed=False)
        holds = [hold]
    else:
        holds = holds_end(PoolHold.objects.filter(pk=hold.pk), actor=actor, now=now)
        if hold.incident_id is None:
            # Its own pause action: stop it. An incident's enter action pauses other pools too;
            # it skips this hold by itself (no longer active).
            cancel_if_open(hold.pause_action, actor)
    why = reason.strip() or ("pause expired" if expired else "resumed")
    holds_restore_request(
        kind=ActionKind.RESUME,
        holds=holds,
        actor=actor,
        reason=why,
        workload_class=workload_class,
        target=f"{workload_class.slug} worker pool",
    )
    hold.refresh_from_db()
    audit_event_record(
        actor=actor,
        action="pool.expire" if expired else "pool.resume",
        target=hold,
        target_repr=f"{workload_class.slug} worker pool",
        workload_class_slug=workload_class.slug,
        extra={"reason": why, "incident": hold.incident_id},
    )
    return HoldResult(hold, changed=True)


@transaction.atomic
def pool_hold_extend(
    *, workload_class: WorkloadClass, actor, expires_in: timedelta, now: datetime | None = None
) -> HoldResult:
    expires_in = checked_expiry(expires_in)
    now = now or timezone.now()
    hold = PoolHold.objects.select_for_update().filter(workload_class=workload_class, state=HoldState.ACTIVE).first()
    if hold is None:
        raise ApplicationError(f"{workload_class.slug} is not paused.", code="not_paused")
    if hold.incident_id is not None:
        raise ApplicationError(
            f"{workload_class.slug} is paused by incident mode: extend the incident instead.", code="incident_hold"
        )
    before = hold.expires_at
    hold.expires_at = now + expires_in
    if not hold.is_override:
        hold.retention_warning = retention_warning(workload_class, paused_for=hold.expires_at - hold.created_at)
    hold.save(update_fields=["expires_at", "retention_warning"])
    audit_event_record(
        actor=actor,
        action="pool.extend",
        target=hold,
        target_repr=f"{workload_class.slug} worker pool",
        workload_class_slug=workload_class.slug,
        changes={"expires_at": [before, hold.expires_at]},
        extra={"warning": hold.retention_warning},
    )
    return HoldResult(hold, changed=True, warnings=[hold.retention_warning] if hold.retention_warning else [])
