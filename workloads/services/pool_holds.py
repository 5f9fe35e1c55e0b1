"""Pool holds, shared by incident mode (workloads/services/incidents.py) and per-class pauses and
overrides (workloads/services/pauses.py): a hold keeps a worker pool at 0 instances (a pause) or at
a chosen count (an override) until it ends, and is restored exactly.

Creating holds requests one Action with a step per hold (workloads/services/hold_actions.py); each
pause step records the pool's count on the hold (committed) BEFORE setting it, so a retried step
never mistakes its own 0 for the count to restore. Ending holds marks them restoring and requests
the restore action; a restored hold is skipped, so every exit and resume is safe to retry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from workloads.errors import ApplicationError
from workloads.models import Action, ActionKind, HoldState, IncidentMode, PoolHold, WorkloadClass
from workloads.models.actions import FINAL_ACTION_STATES
from workloads.selectors.incidents import default_expiry, duration_text, retention_warning
from workloads.services.actions import action_cancel, action_request
from workloads.services.scaling import current_bounds

MIN_EXPIRY = timedelta(minutes=5)
MAX_EXPIRY = timedelta(days=7)  # Pub/Sub's longest message retention


def checked_expiry(expires_in: timedelta | None, field_name: str = "expires_in_minutes") -> timedelta:
    expires_in = default_expiry() if expires_in is None else expires_in
    if not MIN_EXPIRY <= expires_in <= MAX_EXPIRY:
        raise ValidationError(
            {field_name: f"The expiry must be between {duration_text(MIN_EXPIRY)} and {duration_text(MAX_EXPIRY)}."}
        )
    return expires_in


def checked_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why (it is shown in the banner and kept in the audit log)."})
    return reason


def checked_instances(workload_class: WorkloadClass, instances: int) -> int:
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


def actor_label(actor) -> str:
    return actor.get_username() if actor is not None else "system"


def actor_user(actor):
    return actor if actor is not None and actor.pk else None


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


def hold_create(
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
                created_by=actor_user(actor),
                created_by_label=actor_label(actor)[:150],
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


def holds_pause_request(*, kind: str, holds: list[PoolHold], actor, reason: str, **action_fields) -> Action:
    action = action_request(
        kind=kind, actor=actor, reason=reason, parameters={"holds": [h.pk for h in holds]}, **action_fields
    )
    PoolHold.objects.filter(pk__in=[h.pk for h in holds]).update(pause_action=action)
    _cancel_open_scaling([h.workload_class_id for h in holds], actor)
    return action


def holds_restore_request(*, kind: str, holds: list[PoolHold], actor, reason: str, **action_fields) -> Action:
    action = action_request(
        kind=kind, actor=actor, reason=reason, parameters={"holds": [h.pk for h in holds]}, **action_fields
    )
    PoolHold.objects.filter(pk__in=[h.pk for h in holds]).update(restore_action=action)
    return action


def holds_end(holds, *, actor, now) -> list[PoolHold]:
    """Mark active holds as restoring (the restore action does the rest)."""
    holds = list(holds.select_for_update().filter(state=HoldState.ACTIVE))
    PoolHold.objects.filter(pk__in=[h.pk for h in holds]).update(
        state=HoldState.RESTORING, ended_at=now, ended_by=actor_user(actor), ended_by_label=actor_label(actor)[:150]
    )
    return holds


def cancel_if_open(action: Action | None, actor) -> None:
    if action is not None and not action.is_final:
        action_cancel(action=action, actor=actor)
