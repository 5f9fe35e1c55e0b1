"""The actions that carry out pool holds, one step per pool: pausing (`incident_enter`, `pause`,
`override`) and restoring (`incident_exit`, `resume`). Registered with the action engine when the
app loads (workloads/apps.py).

The restore rule:

- if the schedule's bounds (min and max instances) are what they were when the pool was paused,
  restore the count it had (exactly);
- if they differ (a window opened or closed, someone edited the schedule), restore the schedule's
  current target instead: what the controller would choose now from a fresh backlog, or, without
  fresh telemetry, the count it had clamped to the new bounds.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from workloads.models import Action, ActionKind, ActionStep, HoldState, PoolHold, RestoreRule
from workloads.providers import get_providers
from workloads.providers.base import ProviderError
from workloads.providers.specs import pool_spec
from workloads.services.actions import ActionHandler, PlannedStep, register_handler
from workloads.services.scaling import current_bounds, pool_control_record_set, schedule_target


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
