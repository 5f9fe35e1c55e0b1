"""The scaling controller: a beat tick that sizes each class's worker pool from its backlog within
the schedule's bounds, and the `scale` action that carries out each change.

The decision itself is the pure `workloads.domain.scaling.scaling_decision`; this module reads the state
it needs (telemetry, schedules, holds, the pool through the WorkerPools port), records what it
saw in PoolControl, and requests an Action per change, with its reason.

Drift: when a pool's count differs from what we last set, someone else changed it (a manual
gcloud, or a second autoscaler such as CREMA attached to the pool: only one writer may own the
count). The class is flagged and the controller leaves it alone until an operator takes over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workloads.domain.scaling import DecisionInputs, ScalingSettings, clamp, desired_instances, scaling_decision
from workloads.domain.scheduling import InstanceBounds, instance_bounds
from workloads.fastsql.writes import update_rows
from workloads.models import (
    Action,
    ActionKind,
    ActionStep,
    PoolControl,
    PoolHold,
    UnhealthyCause,
    WorkloadClass,
)
from workloads.models.actions import FINAL_ACTION_STATES
from workloads.models.incidents import OPEN_HOLD_STATES
from workloads.providers import get_providers
from workloads.providers.base import ProviderError
from workloads.providers.specs import pool_spec
from workloads.selectors.deployments import deployment_note, latest_deployments
from workloads.selectors.scaling import RECENT_WORK_WINDOW, last_reports_at, latest_backlog, latest_backlogs
from workloads.services.actions import ActionHandler, PlannedStep, action_request, register_handler
from workloads.services.audit import audit_event_record
from workloads.services.deployments import deployment_from_revision
from workloads.services.pool_health import HEALTH_FIELDS, pool_health_judge

logger = logging.getLogger(__name__)

# Actions that set a class's pool: while one is open the controller neither decides nor checks drift
# for that class (the pool is moving on our behalf).
# How far back a deployment is named in the controller's reasons.
DEPLOYMENT_NOTE_WINDOW = timedelta(minutes=30)
POOL_ACTION_KINDS = (ActionKind.SCALE, ActionKind.PAUSE, ActionKind.OVERRIDE, ActionKind.RESUME)


def scaling_settings() -> ScalingSettings:
    return ScalingSettings(
        cooldown_up=timedelta(seconds=settings.SCALING_COOLDOWN_UP_SECONDS),
        cooldown_down=timedelta(seconds=settings.SCALING_COOLDOWN_DOWN_SECONDS),
        hysteresis=settings.SCALING_HYSTERESIS_PERCENT / 100,
    )


def current_bounds(workload_class: WorkloadClass, at: datetime) -> InstanceBounds:
    return instance_bounds(workload_class.baseline_bounds, list(workload_class.schedules.all()), at)


def schedule_target(workload_class: WorkloadClass, *, bounds: InstanceBounds, fallback: int, now: datetime) -> int:
    """The count the controller would choose now: from the backlog when telemetry is fresh, else
    `fallback` clamped to the bounds."""
    backlog = latest_backlog(workload_class, now=now)
    if backlog.messages is None:
        return clamp(fallback, bounds)
    return desired_instances(
        backlog=backlog.messages,
        throughput_per_instance=workload_class.throughput_per_instance,
        drain_target_seconds=workload_class.drain_target_seconds,
        bounds=bounds,
    )


def pool_control_for(workload_class: WorkloadClass) -> PoolControl:
    control, _ = PoolControl.objects.get_or_create(workload_class=workload_class)
    return control


def pool_control_record_set(*, workload_class: WorkloadClass, count: int, reason: str, now: datetime) -> None:
    """Remember a count we set (by scaling, pausing or restoring), so drift is judged against it
    and the cooldown counts from now."""
    PoolControl.objects.get_or_create(workload_class=workload_class)
    PoolControl.objects.filter(workload_class=workload_class).update(
        last_set_count=count,
        last_set_at=now,
        last_set_reason=reason[:255],
        last_observed_count=count,
        last_observed_at=now,
    )


# --- The controller tick -----------------------------------------------------------------------------
@dataclass
class TickSummary:
    classes: int = 0
    scaled: dict[str, int] = field(default_factory=dict)  # slug -> target
    drifted: list[str] = field(default_factory=list)  # newly flagged
    skipped: dict[str, str] = field(default_factory=dict)  # slug -> why


# What a tick writes on every class's PoolControl, saved for all classes in one statement at the
# end (update_rows): the health verdict and the decision on every class read, the observation on
# the classes the controller owns now. The fields the actions write (last_set_*) are not among them.
DECISION_FIELDS = (*HEALTH_FIELDS, "last_target", "last_decision", "last_decided_at")
OBSERVED_FIELDS = ("last_observed_count", "last_observed_at", "last_modifier")


def pool_controls_for(class_ids: list[int]) -> dict[int, PoolControl]:
    """{class id: PoolControl}, created where missing: two statements whatever the number of classes."""
    PoolControl.objects.bulk_create(
        [PoolControl(workload_class_id=pk) for pk in class_ids], ignore_conflicts=True, batch_size=1000
    )
    return {control.pk: control for control in PoolControl.objects.filter(workload_class_id__in=class_ids)}


def _save_controls(controls: list[PoolControl], fields: tuple[str, ...]) -> None:
    update_rows(PoolControl, fields, [(c.pk, *(getattr(c, name) for name in fields)) for c in controls])


def scaling_controller_tick(*, now: datetime) -> TickSummary:
    """One pass over every class. Safe to run late or twice: a change already requested keeps the
    class busy until its action ends, and decisions are recomputed from the current state.

    The reads are batched (one query per table for all classes: pool controls, backlogs, worker
    reports, holds, actions, deployments) and the per-class writes saved together at the end, so a
    thousand classes cost a thousand pool reads (the provider's), not ten queries each."""
    summary = TickSummary()
    tuning = scaling_settings()
    pools = get_providers().pools
    busy = set(
        Action.objects.filter(kind__in=POOL_ACTION_KINDS, workload_class__isnull=False)
        .exclude(state__in=FINAL_ACTION_STATES)
        .values_list("workload_class_id", flat=True)
    )
    classes = list(WorkloadClass.objects.prefetch_related("schedules").order_by("slug"))
    class_ids = [wc.pk for wc in classes]
    controls = pool_controls_for(class_ids)
    backlogs = latest_backlogs(class_ids, now=now)
    reports = last_reports_at(class_ids, now=now)
    holds = {
        hold.workload_class_id: hold
        for hold in PoolHold.objects.filter(state__in=OPEN_HOLD_STATES).select_related("incident")
    }
    recent_deployments = latest_deployments(class_ids=class_ids, start=now - DEPLOYMENT_NOTE_WINDOW, end=now)
    decided: list[PoolControl] = []
    observed: list[PoolControl] = []
    try:
        for workload_class in classes:
            summary.classes += 1
            control = controls[workload_class.pk]
            slug = workload_class.slug
            if not workload_class.runs_on_worker_pool:
                summary.skipped[slug] = "observed runtime: not scaled by the control plane"
                continue
            decided.append(control)
            backlog = backlogs[workload_class.pk]
            try:
                state = pools.get(pool_spec(workload_class))
            except ProviderError as exc:
                _note_decision(control, target=control.last_target, decision=f"could not read the pool: {exc}", now=now)
                summary.skipped[slug] = "pool unreadable"
                continue
            deployment_from_revision(control=control, workload_class=workload_class, revision=state.revision, now=now)
            # Health is judged whoever owns the count: a held or hand-managed pool can crash-loop too.
            health = pool_health_judge(
                workload_class=workload_class,
                control=control,
                state=state,
                backlog=backlog,
                now=now,
                last_report=reports[workload_class.pk],
            )
            if not control.controller_enabled:
                summary.skipped[slug] = "controller off"
                continue
            if workload_class.pk in holds:
                hold = holds[workload_class.pk]
                _note_decision(control, target=hold.hold_count, decision=held_decision(hold), now=now)
                summary.skipped[slug] = "held" if hold.is_override else "paused"
                continue
            if workload_class.pk in busy:
                summary.skipped[slug] = "a pool action is in progress"
                continue
            actual = state.instance_count
            control.last_observed_count, control.last_observed_at = actual, now
            control.last_modifier = state.last_modifier[:255]
            observed.append(control)
            if control.last_set_count is None:
                # Never set by us: adopt what is there as the starting point.
                PoolControl.objects.filter(pk=control.pk, last_set_count__isnull=True).update(last_set_count=actual)
                control.refresh_from_db(fields=["last_set_count"])
            elif actual != control.last_set_count and control.drifted_since is None:
                if _flag_drift(workload_class, actual=actual, modifier=state.last_modifier, now=now):
                    summary.drifted.append(slug)
                control.refresh_from_db(fields=["last_set_count", "drifted_since", "drift_detail"])
            if control.drifted_since is not None:
                _note_decision(
                    control,
                    target=control.last_target,
                    decision=f"drifted: left alone until an operator takes over ({control.drift_detail})",
                    now=now,
                )
                summary.skipped[slug] = "drifted"
                continue

            bounds = instance_bounds(workload_class.baseline_bounds, list(workload_class.schedules.all()), now)
            decision = scaling_decision(
                DecisionInputs(
                    now=now,
                    current=actual,
                    bounds=bounds,
                    backlog=backlog.messages,
                    queue_age_seconds=backlog.queue_age_seconds,
                    throughput_per_instance=workload_class.throughput_per_instance,
                    drain_target_seconds=workload_class.drain_target_seconds,
                    last_change_at=control.last_set_at,
                    recent_work=backlog.recent_work,
                    recent_work_seconds=RECENT_WORK_WINDOW.total_seconds(),
                    unhealthy=UnhealthyCause(health.cause).label.lower() if health.cause else "",
                ),
                tuning,
            )
            # A deployment in the last DEPLOYMENT_NOTE_WINDOW is named in the reason: new code is
            # often why a backlog grew or drained.
            reason = decision.reason
            deployed = deployment_note(recent_deployments.get(workload_class.pk), now=now)
            if deployed:
                reason = f"{reason}; {deployed}"
            note = f"{reason} [{decision.blocked_by}]" if decision.blocked_by else reason
            _note_decision(control, target=decision.target, decision=note, now=now)
            if decision.change:
                # The scale action records what it sets (pool_control_record_set, the observation
                # included): this class's row is saved now, before it, and left out of the end's save.
                control.save(update_fields=[*DECISION_FIELDS, *OBSERVED_FIELDS])
                decided.remove(control)
                observed.remove(control)
                scale_request(workload_class=workload_class, count=decision.target, actor=None, reason=reason)
                summary.scaled[slug] = decision.target
    finally:
        # Saved even when a class's read raised: what was judged before it stands.
        _save_controls(decided, DECISION_FIELDS)
        _save_controls(observed, OBSERVED_FIELDS)
    return summary


def held_decision(hold: PoolHold) -> str:
    """What the controller says of a held pool: who holds it, at what count and until when."""
    by = "incident mode" if hold.incident_id else hold.created_by_label or "an operator"
    what = f"held at {hold.hold_count} by the override" if hold.is_override else "held at 0 by the pause"
    return f"{what} ({by}) until {hold.expires_at:%Y-%m-%d %H:%M} UTC; the controller resumes after it ends"


def _note_decision(control: PoolControl, *, target: int | None, decision: str, now: datetime) -> None:
    """Set in memory; the tick saves every class's decision at its end."""
    control.last_target, control.last_decision, control.last_decided_at = target, decision[:255], now


@transaction.atomic
def _flag_drift(workload_class: WorkloadClass, *, actual: int, modifier: str, now: datetime) -> bool:
    """Flag the class as drifted, unless the difference is our own doing after all: a pause, a
    restore or a scale that started after this tick took its snapshot."""
    control = PoolControl.objects.select_for_update().get(workload_class=workload_class)
    if control.drifted_since is not None or control.last_set_count == actual or _pool_in_motion(workload_class):
        return False
    by = f" (last changed by {modifier})" if modifier else ""
    control.drifted_since = now
    control.drift_detail = f"expected {control.last_set_count} instances, found {actual}{by}"[:255]
    control.save(update_fields=["drifted_since", "drift_detail"])
    audit_event_record(
        actor=None,
        action="pool.drift",
        target=workload_class,
        target_repr=f"{workload_class.slug} worker pool",
        workload_class_slug=workload_class.slug,
        extra={"expected": control.last_set_count, "actual": actual, "last_modifier": modifier},
    )
    return True


def _pool_in_motion(workload_class: WorkloadClass) -> bool:
    if PoolHold.objects.filter(workload_class=workload_class, state__in=OPEN_HOLD_STATES).exists():
        return True
    return (
        Action.objects.filter(workload_class=workload_class, kind__in=POOL_ACTION_KINDS)
        .exclude(state__in=FINAL_ACTION_STATES)
        .exists()
    )


# --- Operator choices ----------------------------------------------------------------------------------
@transaction.atomic
def pool_control_take_over(*, workload_class: WorkloadClass, actor) -> PoolControl:
    """The control plane owns the pool again: the count last seen becomes the one we set, and the
    controller resumes from there (scaling only as the usual guards allow)."""
    control = pool_control_for(workload_class)
    control = PoolControl.objects.select_for_update().get(pk=control.pk)
    before = {"drifted_since": control.drifted_since, "last_set_count": control.last_set_count}
    control.drifted_since = None
    control.drift_detail = ""
    if control.last_observed_count is not None:
        control.last_set_count = control.last_observed_count
    control.takeover_by = actor if actor is not None and actor.pk else None
    control.takeover_by_label = actor.get_username() if actor is not None else "system"
    control.takeover_at = timezone.now()
    control.save()
    audit_event_record(
        actor=actor,
        action="pool.take_over",
        target=workload_class,
        target_repr=f"{workload_class.slug} worker pool",
        workload_class_slug=workload_class.slug,
        changes={
            "drifted_since": [before["drifted_since"], None],
            "last_set_count": [before["last_set_count"], control.last_set_count],
        },
    )
    return control


@transaction.atomic
def pool_control_update(*, workload_class: WorkloadClass, actor, controller_enabled: bool) -> PoolControl:
    control = pool_control_for(workload_class)
    control = PoolControl.objects.select_for_update().get(pk=control.pk)
    if control.controller_enabled != controller_enabled:
        audit_event_record(
            actor=actor,
            action="pool.controller_enable" if controller_enabled else "pool.controller_disable",
            target=workload_class,
            target_repr=f"{workload_class.slug} worker pool",
            workload_class_slug=workload_class.slug,
            changes={"controller_enabled": [control.controller_enabled, controller_enabled]},
        )
        control.controller_enabled = controller_enabled
        control.save(update_fields=["controller_enabled"])
    return control


# --- The scale action ----------------------------------------------------------------------------------
def scale_request(*, workload_class: WorkloadClass, count: int, actor, reason: str) -> Action:
    return action_request(
        kind=ActionKind.SCALE,
        actor=actor,
        reason=reason,
        workload_class=workload_class,
        target=f"{workload_class.slug} worker pool",
        parameters={"count": count},
    )


class ScaleHandler(ActionHandler):
    kind = ActionKind.SCALE

    def plan(self, action: Action) -> list[PlannedStep]:
        return [PlannedStep(key=action.workload_class.worker_pool, payload={"count": action.parameters["count"]})]

    def run_step(self, action: Action, step: ActionStep) -> dict:
        workload_class = action.workload_class
        if PoolHold.objects.filter(workload_class=workload_class, state__in=OPEN_HOLD_STATES).exists():
            return {"skipped": "the class was paused meanwhile; the pause owns the pool"}
        count = step.payload["count"]
        state = get_providers().pools.set_instances(pool_spec(workload_class), count, reason=action.reason)
        pool_control_record_set(
            workload_class=workload_class, count=state.instance_count, reason=action.reason, now=timezone.now()
        )
        return {"instance_count": state.instance_count}


register_handler(ScaleHandler())
