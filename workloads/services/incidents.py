"""Incident mode: hold every deferrable class's worker pool at 0 instances and restore them
exactly; and the beat tick that ends incident mode and pauses past their expiry.

Entering creates a PoolHold for every deferrable class's pool and one Action (`incident_enter`)
with a step per hold (workloads/services/pool_holds.py); a class already paused on its own keeps
its own pause (workloads/services/pauses.py). Exiting (or expiry) marks the holds as restoring and
runs `incident_exit`, one step per hold, with the restore rule of workloads/services/hold_actions.py.

In-flight work finishes and nothing is dropped: a paused pool only stops pulling, and Pub/Sub
keeps the backlog for the subscription's retention, which is why a pause that may outlast it is
warned about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from workloads.errors import ApplicationError
from workloads.models import (
    ActionKind,
    Environment,
    HoldState,
    IncidentEndReason,
    IncidentMode,
    PoolHold,
    Tier,
    WorkloadClass,
)
from workloads.runtimes import Runtime
from workloads.selectors.incidents import retention_warning
from workloads.services.audit import audit_event_record
from workloads.services.pauses import pool_resume
from workloads.services.pool_holds import (
    IncidentResult,
    actor_label,
    actor_user,
    cancel_if_open,
    checked_expiry,
    checked_reason,
    hold_create,
    holds_end,
    holds_pause_request,
    holds_restore_request,
)
from workloads.services.runtime_control import incident_signals_send


def _active(environment: Environment | None, *, covering: bool = False) -> IncidentMode | None:
    """The active incident of this scope (None: for every environment), locked. `covering`: for an
    environment, one for every environment counts too (it already pauses that environment's pools)."""
    active = IncidentMode.objects.select_for_update().filter(ended_at__isnull=True)
    if environment is not None and covering:
        scoped = active.filter(environment=environment).first()
        return scoped or active.filter(environment__isnull=True).first()
    return active.filter(environment=environment).first()


@transaction.atomic
def incident_mode_enter(
    *,
    actor,
    reason: str,
    ticket: str = "",
    expires_in: timedelta | None = None,
    now: datetime | None = None,
    environment: Environment | None = None,
) -> IncidentResult:
    """Pause every deferrable class's pool (of `environment` only, when given) until exit or
    expiry. Already in incident mode there (or for every environment): the active incident is
    returned and nothing new happens."""
    reason = checked_reason(reason)
    expires_in = checked_expiry(expires_in)
    now = now or timezone.now()
    active = _active(environment, covering=True)
    if active is not None:
        return IncidentResult(active, changed=False)
    try:
        with transaction.atomic():
            incident = IncidentMode.objects.create(
                environment=environment,
                reason=reason,
                ticket=(ticket or "").strip()[:200],
                started_by=actor_user(actor),
                started_by_label=actor_label(actor)[:150],
                started_at=now,
                expires_at=now + expires_in,
            )
    except IntegrityError:  # another request entered at the same moment: theirs stands
        return IncidentResult(_active(environment, covering=True), changed=False)

    holds, already_paused = [], []
    deferrable = WorkloadClass.objects.filter(tier=Tier.DEFERRABLE, runtime=Runtime.WORKER_POOL)
    if environment is not None:
        deferrable = deferrable.filter(environment=environment)
    for workload_class in deferrable.prefetch_related("schedules"):
        hold = hold_create(
            workload_class=workload_class,
            incident=incident,
            actor=actor,
            reason=f"incident mode: {reason}",
            expires_at=incident.expires_at,
            now=now,
        )
        if hold is None:
            already_paused.append(workload_class.slug)
        else:
            holds.append(hold)
    action = holds_pause_request(
        kind=ActionKind.INCIDENT_ENTER,
        holds=holds,
        actor=actor,
        reason=reason,
        target=f"{len(holds)} deferrable pool{'s' if len(holds) != 1 else ''}",
    )
    incident.enter_action = action
    incident.save(update_fields=["enter_action"])
    # Observed runtimes have no pool to pause: their control webhook is told instead.
    signalled = incident_signals_send(incident=incident, kind="pause", actor=actor, reason=f"incident mode: {reason}")
    warnings = [h.retention_warning for h in holds if h.retention_warning]
    audit_event_record(
        actor=actor,
        action="incident_mode.enter",
        target=incident,
        extra={
            "reason": reason,
            "ticket": incident.ticket,
            "expires_at": incident.expires_at,
            "environment": environment.slug if environment else None,
            "classes": [h.workload_class.slug for h in holds],
            "already_paused": already_paused,
            "signalled": signalled,
            "warnings": warnings,
        },
    )
    return IncidentResult(incident, changed=True, warnings=warnings)


@transaction.atomic
def incident_mode_exit(
    *,
    actor,
    reason: str = "",
    expired: bool = False,
    now: datetime | None = None,
    environment: Environment | None = None,
) -> IncidentResult:
    """End incident mode (the one for `environment`, or for every environment) and restore its
    pools. Safe to retry: with no active incident, holds of the last one that are still not
    restored (a failed restore) get a new restore action, and otherwise nothing happens."""
    now = now or timezone.now()
    incident = _active(environment)
    if incident is None:
        latest = IncidentMode.objects.select_for_update().filter(environment=environment).first()
        if latest is None:
            raise ApplicationError("Incident mode is not active.", code="not_active")
        return IncidentResult(latest, changed=_restore_retry(latest, actor=actor))

    incident.ended_at = now
    incident.ended_by = actor_user(actor)
    incident.ended_by_label = actor_label(actor)[:150]
    incident.end_reason = IncidentEndReason.EXPIRED if expired else IncidentEndReason.EXITED
    holds = holds_end(incident.holds.all(), actor=actor, now=now)
    # A pause still under way stops between steps; the restore of a hold waits until it has.
    cancel_if_open(incident.enter_action, actor)
    why = reason.strip() or ("incident mode expired" if expired else "incident mode exited")
    incident.exit_action = holds_restore_request(
        kind=ActionKind.INCIDENT_EXIT,
        holds=holds,
        actor=actor,
        reason=why,
        target=f"{len(holds)} paused pool{'s' if len(holds) != 1 else ''}",
    )
    incident.save()
    signalled = incident_signals_send(incident=incident, kind="resume", actor=actor, reason=why)
    audit_event_record(
        actor=actor,
        action="incident_mode.expire" if expired else "incident_mode.exit",
        target=incident,
        extra={"reason": why, "classes": [h.workload_class.slug for h in holds], "signalled": signalled},
    )
    return IncidentResult(incident, changed=True)


def _restore_retry(incident: IncidentMode, *, actor) -> bool:
    stuck = list(incident.holds.filter(state=HoldState.RESTORING).select_related("restore_action"))
    if not stuck or any(h.restore_action is not None and not h.restore_action.is_final for h in stuck):
        return False
    incident.exit_action = holds_restore_request(
        kind=ActionKind.INCIDENT_EXIT,
        holds=stuck,
        actor=actor,
        reason="retry of the restore",
        target=f"{len(stuck)} paused pool{'s' if len(stuck) != 1 else ''}",
    )
    incident.save(update_fields=["exit_action"])
    audit_event_record(
        actor=actor,
        action="incident_mode.restore_retry",
        target=incident,
        extra={"classes": [h.workload_class.slug for h in stuck]},
    )
    return True


@transaction.atomic
def incident_mode_extend(
    *, actor, expires_in: timedelta, now: datetime | None = None, environment: Environment | None = None
) -> IncidentResult:
    """Move the active incident's expiry (for `environment`, or for every environment) to
    `expires_in` from now (its holds with it)."""
    expires_in = checked_expiry(expires_in)
    now = now or timezone.now()
    incident = _active(environment)
    if incident is None:
        raise ApplicationError("Incident mode is not active.", code="not_active")
    before = incident.expires_at
    incident.expires_at = now + expires_in
    incident.save(update_fields=["expires_at"])
    warnings = []
    for hold in incident.holds.filter(state=HoldState.ACTIVE).select_related("workload_class"):
        hold.expires_at = incident.expires_at
        hold.retention_warning = retention_warning(hold.workload_class, paused_for=hold.expires_at - hold.created_at)
        hold.save(update_fields=["expires_at", "retention_warning"])
        if hold.retention_warning:
            warnings.append(hold.retention_warning)
    audit_event_record(
        actor=actor,
        action="incident_mode.extend",
        target=incident,
        changes={"expires_at": [before, incident.expires_at]},
        extra={"warnings": warnings},
    )
    return IncidentResult(incident, changed=True, warnings=warnings)


# --- The beat tick ---------------------------------------------------------------------------------------
@dataclass
class ExpirySummary:
    incidents_expired: list[int] = field(default_factory=list)
    holds_expired: list[str] = field(default_factory=list)  # slugs
    warned: list[str] = field(default_factory=list)  # slugs


def pool_holds_expire(*, now: datetime) -> ExpirySummary:
    """End incident mode and pauses past their expiry; warn (audit event + the hold's field the UI
    shows) about holds that may outlast their subscription's retention. Safe to run twice."""
    summary = ExpirySummary()
    for incident in IncidentMode.objects.filter(ended_at__isnull=True, expires_at__lte=now):
        result = incident_mode_exit(actor=None, expired=True, now=now, environment=incident.environment)
        if result.changed:
            summary.incidents_expired.append(incident.pk)
    due = PoolHold.objects.filter(state=HoldState.ACTIVE, incident__isnull=True, expires_at__lte=now)
    for hold in due.select_related("workload_class"):
        pool_resume(workload_class=hold.workload_class, actor=None, expired=True, now=now)
        summary.holds_expired.append(hold.workload_class.slug)
    unwarned = PoolHold.objects.filter(state=HoldState.ACTIVE, retention_warning="").select_related("workload_class")
    for hold in unwarned:
        warning = retention_warning(hold.workload_class, paused_for=hold.expires_at - hold.created_at)
        if not warning:
            continue
        with transaction.atomic():
            if PoolHold.objects.filter(pk=hold.pk, retention_warning="").update(retention_warning=warning) != 1:
                continue
            audit_event_record(
                actor=None,
                action="pool.retention_warning",
                target=hold,
                target_repr=f"{hold.workload_class.slug} worker pool",
                workload_class_slug=hold.workload_class.slug,
                result="failure",
                extra={"warning": warning, "expires_at": hold.expires_at},
            )
        summary.warned.append(hold.workload_class.slug)
    return summary
