"""Migration plans: create one, move it through its phases on evidence, roll it back.

A phase change is judged first: the evidence of the phase under way (old and new side by side on
the same period) against the plan's gate. A verdict other than "pass" refuses the change unless the
person overrides it, and the verdict, the evidence and who acted are stored either way
(`MigrationDecision`). The change itself is an action (`migration_step`) with two steps: route the
new share at ingestion, then start the new phase. Roll-back is never gated: it routes everything
back to the old runtime at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from workloads.domain.evidence import PASS
from workloads.errors import ApplicationError
from workloads.models import (
    Action,
    ActionKind,
    ActionStep,
    MigrationDecision,
    MigrationPlan,
    Phase,
    WorkloadClass,
)
from workloads.models.actions import FINAL_ACTION_STATES
from workloads.models.migration import ACTIVE_PHASES, FORWARD
from workloads.runtimes import Runtime
from workloads.selectors.migration import plan_evidence
from workloads.services.actions import ActionHandler, PlannedStep, action_request, register_handler
from workloads.services.audit import audit_event_record
from workloads.services.backfill import backfill_request, history_missing, publishes_own_metrics

# The old side's "before" period a plan is judged against: read from Cloud Monitoring when missing.
BASELINE_BEFORE = timedelta(days=7)

THRESHOLD_FIELDS = (
    "canary_percent",
    "ramp_percent",
    "max_failure_rate_increase_points",
    "max_latency_p95_ratio",
    "max_cost_per_1k_ratio",
    "max_attainment_drop_points",
    "min_outcomes",
)


def _user(actor):
    return actor if actor is not None and getattr(actor, "pk", None) else None


@transaction.atomic
def migration_plan_create(
    *, actor, name: str, source: WorkloadClass, target: WorkloadClass, now: datetime | None = None, **thresholds
) -> MigrationPlan:
    now = now or timezone.now()
    if source.pk == target.pk:
        raise ApplicationError(
            "A plan moves a class to another class: pick a Worker Pool class as the target.",
            status=400,
            code="same_class",
        )
    if target.runtime != Runtime.WORKER_POOL:
        raise ApplicationError(
            f"The target {target.slug} runs on {target.get_runtime_display()}: "
            "a plan moves work to a Worker Pool class.",
            status=400,
            code="target_not_worker_pool",
        )
    if source.route_to_id is not None and source.route_percent:
        raise ApplicationError(f"{source.slug} already routes part of its events elsewhere.", code="already_routing")
    if MigrationPlan.objects.filter(source=target, phase__in=ACTIVE_PHASES).exists():
        raise ApplicationError(f"{target.slug} is itself being migrated.", status=400, code="target_in_plan")
    unknown = set(thresholds) - set(THRESHOLD_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown settings: {', '.join(sorted(unknown))}.", status=400, code="unknown_field")
    plan = MigrationPlan(
        name=(name or f"Move {source.slug} to {target.slug}")[:120],
        source=source,
        target=target,
        phase=Phase.BASELINE,
        phase_started_at=now,
        created_by=_user(actor),
        **thresholds,
    )
    plan.full_clean(exclude=["source", "target", "created_by"])
    if plan.canary_percent > plan.ramp_percent:
        raise ApplicationError("The canary share must not exceed the ramp share.", status=400, code="invalid")
    try:
        with transaction.atomic():
            plan.save()
    except IntegrityError:
        raise ApplicationError(f"{source.slug} already has a migration plan under way.", code="plan_exists") from None
    audit_event_record(
        actor=actor,
        action="migration_plan.create",
        target=plan,
        target_repr=plan.name,
        workload_class_slug=source.slug,
        extra={"target": target.slug, **{f: getattr(plan, f) for f in THRESHOLD_FIELDS}},
    )
    if publishes_own_metrics(source) and history_missing(source, start=now - BASELINE_BEFORE, end=now):
        # Its baseline should not wait for new history: read the past Monitoring still has.
        try:
            backfill_request(workload_class=source, actor=actor, reason=f"{plan.name}: the old side's history")
        except ApplicationError:
            pass  # nothing Monitoring could still give (a window shorter than the poll's own)
    return plan


def _busy(plan: MigrationPlan) -> bool:
    return (
        Action.objects.filter(kind=ActionKind.MIGRATION_STEP, parameters__plan=plan.pk)
        .exclude(state__in=FINAL_ACTION_STATES)
        .exists()
    )


@transaction.atomic
def migration_plan_advance(
    *, plan: MigrationPlan, to_phase: str, actor, reason: str = "", override: bool = False, now: datetime | None = None
) -> MigrationDecision:
    """Judge the phase under way and, if its gate passes (or the person overrides it), request the
    action that moves the plan to `to_phase`. Roll-back (`rolled_back`) is always allowed."""
    now = now or timezone.now()
    MigrationPlan.objects.select_for_update().filter(pk=plan.pk).first()  # one change of a plan at a time
    plan = MigrationPlan.objects.select_related("source__cost_rates", "target__cost_rates").get(pk=plan.pk)
    try:
        to_phase = Phase(to_phase)
    except ValueError:
        raise ApplicationError(
            f"Unknown phase {to_phase!r}: one of {', '.join(Phase.values)}.", status=400, code="invalid_phase"
        ) from None
    rollback = to_phase == Phase.ROLLED_BACK
    if not plan.is_active:
        raise ApplicationError(f"The plan is {plan.get_phase_display().lower()}: it has ended.", code="plan_ended")
    if not rollback and to_phase not in FORWARD[Phase(plan.phase)]:
        allowed = ", ".join(FORWARD[Phase(plan.phase)]) or "none"
        raise ApplicationError(
            f"From {plan.phase} a plan moves to {allowed} (or rolled_back), not {to_phase}.", code="invalid_transition"
        )
    if _busy(plan):
        raise ApplicationError("A step of this plan is still running; wait for it to finish.", code="plan_busy")

    report = plan_evidence(plan, now=now)
    gated = not rollback and plan.phase != Phase.BASELINE
    verdict = report.verdict if gated else "not gated"
    if gated and verdict != PASS and not override:
        raise ApplicationError(
            f"The gate says {verdict}: "
            + "; ".join(f"{c.name}: {c.verdict} ({c.detail})" for c in report.checks if c.verdict != PASS)
            + ". Override to act anyway (recorded).",
            code="gate_not_passed",
            extra={"verdict": verdict, "checks": [c.__dict__ for c in report.checks]},
        )
    percent = plan.route_percent_for(to_phase)
    action = action_request(
        kind=ActionKind.MIGRATION_STEP,
        actor=actor,
        reason=reason or f"{plan.name}: {plan.phase} -> {to_phase}",
        workload_class=plan.source,
        target=f"{plan.source.slug} -> {plan.target.slug} ({to_phase}, {percent} %)",
        parameters={"plan": plan.pk, "from_phase": plan.phase, "to_phase": to_phase, "route_percent": percent},
    )
    decision = MigrationDecision.objects.create(
        plan=plan,
        from_phase=plan.phase,
        to_phase=to_phase,
        verdict=verdict,
        overridden=gated and verdict != PASS,
        evidence=report.as_dict(),
        reason=reason,
        action=action,
        acted_by=_user(actor),
        acted_by_label=actor.get_username() if actor is not None else "system",
        acted_at=now,
    )
    audit_event_record(
        actor=actor,
        action="migration_plan.rollback" if rollback else "migration_plan.advance",
        target=plan,
        target_repr=plan.name,
        workload_class_slug=plan.source.slug,
        extra={
            "from_phase": plan.phase,
            "to_phase": to_phase,
            "route_percent": percent,
            "verdict": verdict,
            "overridden": decision.overridden,
            "reason": reason,
            "action": action.pk,
        },
    )
    return decision


class MigrationStepHandler(ActionHandler):
    """Route the new share at ingestion, then start the new phase: each step commits with its
    result, so a crashed worker's step is never applied twice."""

    kind = ActionKind.MIGRATION_STEP
    atomic_steps = True

    def plan(self, action: Action) -> list[PlannedStep]:
        p = action.parameters
        return [
            PlannedStep(key=f"route {p['route_percent']} % to the worker pool", payload={}),
            PlannedStep(key=f"phase {p['to_phase']}", payload={}),
        ]

    def run_step(self, action: Action, step: ActionStep) -> dict:
        p = action.parameters
        plan = MigrationPlan.objects.select_for_update().get(pk=p["plan"])
        if step.key.startswith("route"):
            percent = p["route_percent"]
            WorkloadClass.objects.filter(pk=plan.source_id).update(
                route_to=plan.target_id if percent else None, route_percent=percent
            )
            return {"route_percent": percent}
        MigrationPlan.objects.filter(pk=plan.pk).update(phase=p["to_phase"], phase_started_at=timezone.now())
        return {"phase": p["to_phase"]}


register_handler(MigrationStepHandler())
