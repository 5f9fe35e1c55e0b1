"""Incident mode and per-class pauses: hold worker pools at 0 instances and restore them exactly.

Entering incident mode creates a PoolHold for every deferrable class's pool and one Action
(`incident_enter`) with a step per hold; a class already paused on its own keeps its own pause.
Each pause step reads the pool's count and records it on the hold (committed) BEFORE setting 0,
so a step retried after a crash or a transient error never mistakes its own 0 for the count to
restore. Pausing one class is the same with one hold (`pause`); a manual override (`override`) is
a hold of one class at a count other than 0, with the same expiry and restore rule.

Exiting (or expiry) marks the holds as restoring and runs `incident_exit` (one class: `resume`),
one step per hold, with this restore rule:

- if the schedule's bounds (min and max instances) are what they were when the pool was paused,
  restore the count it had (exactly);
- if they differ (a window opened or closed, someone edited the schedule), restore the schedule's
  current target instead: what the controller would choose now from a fresh backlog, or, without
  fresh telemetry, the count it had clamped to the new bounds.

A restored hold is skipped, so every exit and resume is safe to retry. In-flight work finishes and
nothing is dropped: a paused pool only stops pulling, and Pub/Sub keeps the backlog for the
subscription's retention, which is why a pause that may outlast it is warned about.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from workloads.errors import ApplicationError
from workloads.models import (
    Action,
    ActionKind,
    ActionStep,
    HoldState,
    IncidentEndReason,
    IncidentMode,
    PoolHold,
    RestoreRule,
    Tier,
    WorkloadClass,
)
from workloads.models.actions import FINAL_ACTION_STATES
from workloads.models.incidents import OPEN_HOLD_STATES
from workloads.providers import get_providers
from workloads.providers.base import ProviderError
from workloads.providers.specs import pool_spec
from workloads.runtimes import Runtime
from workloads.selectors.incidents import default_expiry, duration_text, retention_warning
from workloads.services.actions import ActionHandler, PlannedStep, action_cancel, action_request, register_handler
from workloads.services.audit import audit_event_record
from workloads.services.runtime_control import incident_signals_send
from workloads.services.scaling import current_bounds, pool_control_record_set, schedule_target

logger = logging.getLogger(__name__)

MIN_EXPIRY = timedelta(minutes=5)
MAX_EXPIRY = timedelta(days=7)  # Pub/Sub's longest message retention


def _checked_expiry(expires_in: timedelta | None, field_name: str = "expires_in_minutes") -> timedelta:
    expires_in = default_expiry() if expires_in is None else expires_in
    if not MIN_EXPIRY <= expires_in <= MAX_EXPIRY:
        raise ValidationError(
            {field_name: f"The expiry must be between {duration_text(MIN_EXPIRY)} and {duration_text(MAX_EXPIRY)}."}
        )
    return expires_in


def _checked_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why (it is shown in the banner and kept in the audit log)."})
    return reason


def _checked_instances(workload_class: WorkloadClass, instances: int) -> int:
    """An override may go anywhere from 0 to the class's own max (it overrides schedules, not the
    class's limit)."""
    whole = isinstance(instances, int) and not isinstance(instances, bool)
    if not whole or not 0 <= instances <= workload_class.max_instances:
        raise ApplicationError(
            f"instances must be a whole number from 0 to {workload_class.max_instances} "
            f"({workload_class.slug}'s max instances).",
            code="invalid_instances",
            status=400,
        )
    return instances


def _label(actor) -> str:
    return actor.get_username() if actor is not None else "system"


def _user(actor):
    return actor if actor is not None and actor.pk else None


# --- Results ----------------------------------------------------------------------------------------------
@dataclass
class IncidentResult:
    incident: IncidentMode
    changed: bool  # False: nothing new was done (already in incident mode, already exited)
    warnings: list[str] = field(default_factory=list)


@dataclass
class HoldResult:
    hold: PoolHold
    changed: bool
    warnings: list[str] = field(default_factory=list)


def _hold_create(
    *,
    workload_class: WorkloadClass,
    incident: IncidentMode | None,
    actor,
    reason: str,
    expires_at: datetime,
    now,
    hold_count: int = 0,
) -> PoolHold | None:
    """A new active hold, or None when the class already has an open one (a concurrent pause)."""
    bounds = current_bounds(workload_class, now)
    try:
        with transaction.atomic():
            return PoolHold.objects.create(
                workload_class=workload_class,
                incident=incident,
                reason=reason,
                expires_at=expires_at,
                hold_count=hold_count,
                bounds_min=bounds.min_instances,
                bounds_max=bounds.max_instances,
                bounds_source=bounds.source[:64],
                # Held at a count, the pool keeps pulling: only a pause risks the retention.
                retention_warning="" if hold_count else retention_warning(workload_class, paused_for=expires_at - now),
                created_by=_user(actor),
                created_by_label=_label(actor)[:150],
                created_at=now,
            )
    except IntegrityError:
        return None


def _cancel_open_scaling(class_ids: list[int], actor) -> None:
    """A scale requested before the pause must not undo it."""
    for action in Action.objects.filter(workload_class_id__in=class_ids, kind=ActionKind.SCALE).exclude(
        state__in=FINAL_ACTION_STATES
    ):
        action_cancel(action=action, actor=actor)


def _holds_pause_request(*, kind: str, holds: list[PoolHold], actor, reason: str, **action_fields) -> Action:
    action = action_request(
        kind=kind, actor=actor, reason=reason, parameters={"holds": [h.pk for h in holds]}, **action_fields
    )
    PoolHold.objects.filter(pk__in=[h.pk for h in holds]).update(pause_action=action)
    _cancel_open_scaling([h.workload_class_id for h in holds], actor)
    return action


def _holds_restore_request(*, kind: str, holds: list[PoolHold], actor, reason: str, **action_fields) -> Action:
    action = action_request(
        kind=kind, actor=actor, reason=reason, parameters={"holds": [h.pk for h in holds]}, **action_fields
    )
    PoolHold.objects.filter(pk__in=[h.pk for h in holds]).update(restore_action=action)
    return action


def _holds_end(holds, *, actor, now) -> list[PoolHold]:
    """Mark active holds as restoring (the restore action does the rest)."""
    holds = list(holds.select_for_update().filter(state=HoldState.ACTIVE))
    PoolHold.objects.filter(pk__in=[h.pk for h in holds]).update(
        state=HoldState.RESTORING, ended_at=now, ended_by=_user(actor), ended_by_label=_label(actor)[:150]
    )
    return holds


def _cancel_if_open(action: Action | None, actor) -> None:
    if action is not None and not action.is_final:
        action_cancel(action=action, actor=actor)


# --- Incident mode -------------------------------------------------------------------------------------
@transaction.atomic
def incident_mode_enter(
    *, actor, reason: str, ticket: str = "", expires_in: timedelta | None = None, now: datetime | None = None
) -> IncidentResult:
    """Pause every deferrable class's pool until exit or expiry. Already in incident mode: the
    active incident is returned and nothing new happens."""
    reason = _checked_reason(reason)
    expires_in = _checked_expiry(expires_in)
    now = now or timezone.now()
    active = IncidentMode.objects.select_for_update().filter(ended_at__isnull=True).first()
    if active is not None:
        return IncidentResult(active, changed=False)
    try:
        with transaction.atomic():
            incident = IncidentMode.objects.create(
                reason=reason,
                ticket=(ticket or "").strip()[:200],
                started_by=_user(actor),
                started_by_label=_label(actor)[:150],
                started_at=now,
                expires_at=now + expires_in,
            )
    except IntegrityError:  # another request entered at the same moment: theirs stands
        return IncidentResult(IncidentMode.objects.get(ended_at__isnull=True), changed=False)

    holds, already_paused = [], []
    for workload_class in WorkloadClass.objects.filter(
        tier=Tier.DEFERRABLE, runtime=Runtime.WORKER_POOL
    ).prefetch_related("schedules"):
        hold = _hold_create(
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
    action = _holds_pause_request(
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
            "classes": [h.workload_class.slug for h in holds],
            "already_paused": already_paused,
            "signalled": signalled,
            "warnings": warnings,
        },
    )
    return IncidentResult(incident, changed=True, warnings=warnings)


@transaction.atomic
def incident_mode_exit(
    *, actor, reason: str = "", expired: bool = False, now: datetime | None = None
) -> IncidentResult:
    """End incident mode and restore its pools. Safe to retry: with no active incident, holds of
    the last one that are still not restored (a failed restore) get a new restore action, and
    otherwise nothing happens."""
    now = now or timezone.now()
    incident = IncidentMode.objects.select_for_update().filter(ended_at__isnull=True).first()
    if incident is None:
        latest = IncidentMode.objects.select_for_update().first()
        if latest is None:
            raise ApplicationError("Incident mode is not active.", code="not_active")
        return IncidentResult(latest, changed=_restore_retry(latest, actor=actor))

    incident.ended_at = now
    incident.ended_by = _user(actor)
    incident.ended_by_label = _label(actor)[:150]
    incident.end_reason = IncidentEndReason.EXPIRED if expired else IncidentEndReason.EXITED
    holds = _holds_end(incident.holds.all(), actor=actor, now=now)
    # A pause still under way stops between steps; the restore of a hold waits until it has.
    _cancel_if_open(incident.enter_action, actor)
    why = reason.strip() or ("incident mode expired" if expired else "incident mode exited")
    incident.exit_action = _holds_restore_request(
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
    incident.exit_action = _holds_restore_request(
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
def incident_mode_extend(*, actor, expires_in: timedelta, now: datetime | None = None) -> IncidentResult:
    """Move the active incident's expiry to `expires_in` from now (its holds with it)."""
    expires_in = _checked_expiry(expires_in)
    now = now or timezone.now()
    incident = IncidentMode.objects.select_for_update().filter(ended_at__isnull=True).first()
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


# --- Pausing one class ---------------------------------------------------------------------------------
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
    reason = _checked_reason(reason)
    expires_in = _checked_expiry(expires_in)
    instances = _checked_instances(workload_class, instances)
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
    hold = _hold_create(
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
    _holds_pause_request(
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
        holds = _holds_end(PoolHold.objects.filter(pk=hold.pk), actor=actor, now=now)
        if hold.incident_id is None:
            # Its own pause action: stop it. An incident's enter action pauses other pools too;
            # it skips this hold by itself (no longer active).
            _cancel_if_open(hold.pause_action, actor)
    why = reason.strip() or ("pause expired" if expired else "resumed")
    _holds_restore_request(
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
    expires_in = _checked_expiry(expires_in)
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
        result = incident_mode_exit(actor=None, expired=True, now=now)
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


# --- The actions --------------------------------------------------------------------------------------------
def _short_pool(worker_pool: str) -> str:
    parts = worker_pool.split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else worker_pool


def _short_error(hold: PoolHold, fallback: str) -> str:
    pool = _short_pool(hold.workload_class.worker_pool)
    if hold.last_error_code == "PERMISSION_DENIED":
        return f"permission denied on {pool}"
    if hold.last_error_code == "NOT_FOUND":
        return f"{pool} not found"
    return fallback


class _HoldsHandler(ActionHandler):
    """Steps are the holds listed in the action's parameters, one per pool."""

    verb = ""

    def plan(self, action: Action) -> list[PlannedStep]:
        holds = PoolHold.objects.filter(pk__in=action.parameters.get("holds", [])).select_related("workload_class")
        return [
            PlannedStep(key=h.workload_class.worker_pool, payload={"hold": h.pk, "class": h.workload_class.slug})
            for h in sorted(holds, key=lambda h: h.workload_class.slug)
        ]

    def describe_outcome(self, action: Action, *, done: int, failed: int, total: int) -> str:
        return f"{done} of {total} pools {self.verb}"

    def describe_failure(self, step: ActionStep) -> str:
        hold = PoolHold.objects.select_related("workload_class").filter(pk=step.payload.get("hold")).first()
        if hold is None:
            return super().describe_failure(step)
        return f"{hold.workload_class.slug}: {_short_error(hold, step.error)}"

    @staticmethod
    def _hold(step: ActionStep) -> PoolHold | None:
        """The step's hold; None when its class was deleted since the action was planned."""
        return PoolHold.objects.select_related("workload_class", "pause_action").filter(pk=step.payload["hold"]).first()

    @staticmethod
    def _record_error(hold: PoolHold, exc: ProviderError, **changes) -> None:
        PoolHold.objects.filter(pk=hold.pk).update(last_error=exc.message, last_error_code=exc.code[:32], **changes)


class PauseHandler(_HoldsHandler):
    verb = "paused"

    def __init__(self, kind: str):
        self.kind = kind

    def run_step(self, action: Action, step: ActionStep) -> dict:
        hold = self._hold(step)
        if hold is None:
            return {"skipped": "the class was deleted"}
        if hold.state != HoldState.ACTIVE:
            return {"skipped": f"the hold is {hold.get_state_display().lower()} (resumed before it was paused)"}
        spec = pool_spec(hold.workload_class)
        pools = get_providers().pools
        try:
            if hold.previous_count is None:
                # Recorded (and committed) before the pool is touched: a retry after a crash
                # reads it from here, not from a pool that may already be at 0.
                count = pools.get(spec).instance_count
                PoolHold.objects.filter(pk=hold.pk, previous_count__isnull=True).update(previous_count=count)
                hold.refresh_from_db(fields=["previous_count"])
            state = pools.set_instances(spec, hold.hold_count, reason=f"{action.get_kind_display()}: {action.reason}")
        except ProviderError as exc:
            if exc.permanent:
                self._record_error(hold, exc, state=HoldState.FAILED, ended_at=timezone.now())
            raise
        now = timezone.now()
        with transaction.atomic():
            PoolHold.objects.filter(pk=hold.pk).update(paused_at=now, last_error="", last_error_code="")
            pool_control_record_set(
                workload_class=hold.workload_class, count=state.instance_count, reason=action.reason, now=now
            )
        return {"previous_count": hold.previous_count, "instance_count": state.instance_count}


def restore_target(hold: PoolHold, *, now: datetime) -> tuple[int, str, str]:
    """(count, rule, detail) for restoring a hold: see the module docstring."""
    workload_class = hold.workload_class
    bounds = current_bounds(workload_class, now)
    if (bounds.min_instances, bounds.max_instances) == (hold.bounds_min, hold.bounds_max):
        return hold.previous_count, RestoreRule.PREVIOUS, f"the count it had: {hold.previous_count}"
    target = schedule_target(workload_class, bounds=bounds, fallback=hold.previous_count, now=now)
    detail = (
        f"the schedule moved from {hold.bounds_min}-{hold.bounds_max} ({hold.bounds_source}) to "
        f"{bounds.min_instances}-{bounds.max_instances} ({bounds.source}): its target now is {target} "
        f"(it had {hold.previous_count})"
    )
    return target, RestoreRule.SCHEDULE_TARGET, detail[:255]


class RestoreHandler(_HoldsHandler):
    verb = "restored"

    def __init__(self, kind: str):
        self.kind = kind

    def run_step(self, action: Action, step: ActionStep) -> dict:
        hold = self._hold(step)
        if hold is None:
            return {"skipped": "the class was deleted"}
        if hold.state == HoldState.RESTORED:
            return {"skipped": "already restored", "instance_count": hold.restored_count}
        if hold.pause_action is not None and not hold.pause_action.is_final:
            # Its pause was cancelled and stops between steps; restoring before it has stopped
            # could be undone by the pause step still running.
            raise ProviderError(
                f"{hold.workload_class.slug} is still being paused (action #{hold.pause_action_id}); "
                "the restore waits for it to stop.",
                permanent=False,
                code="PAUSE_IN_PROGRESS",
            )
        now = timezone.now()
        if hold.previous_count is None:
            # The pause never read the pool, so it never touched it either.
            PoolHold.objects.filter(pk=hold.pk).update(
                state=HoldState.RESTORED, restore_rule=RestoreRule.NOTHING, restore_detail="it was never paused"
            )
            return {"skipped": "never paused"}
        target, rule, detail = restore_target(hold, now=now)
        try:
            state = get_providers().pools.set_instances(
                pool_spec(hold.workload_class), target, reason=f"{action.get_kind_display()}: {detail}"
            )
        except ProviderError as exc:
            if exc.permanent:
                self._record_error(hold, exc)
            raise
        with transaction.atomic():
            PoolHold.objects.filter(pk=hold.pk).update(
                state=HoldState.RESTORED,
                restored_count=state.instance_count,
                restore_rule=rule,
                restore_detail=detail,
                last_error="",
                last_error_code="",
            )
            pool_control_record_set(
                workload_class=hold.workload_class, count=state.instance_count, reason=f"restored: {detail}", now=now
            )
        return {"instance_count": state.instance_count, "rule": rule, "detail": detail}


register_handler(PauseHandler(ActionKind.INCIDENT_ENTER))
register_handler(PauseHandler(ActionKind.PAUSE))
register_handler(PauseHandler(ActionKind.OVERRIDE))
register_handler(RestoreHandler(ActionKind.INCIDENT_EXIT))
register_handler(RestoreHandler(ActionKind.RESUME))
