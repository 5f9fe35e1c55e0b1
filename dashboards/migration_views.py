"""Migration plans on screen: where to start, the plans, a plan's evidence and its buttons. Every
button calls the same service as its API endpoint (workloads/services/migration.py)."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from controlplane.roles import Role, environment_role, has_role, readable_environment_ids
from dashboards.forms.migrations import PlanForm
from dashboards.rendering import render_page, role_required
from workloads.errors import ApplicationError
from workloads.models import Phase, WorkloadClass
from workloads.models.migration import FORWARD
from workloads.selectors import migration as migration_selectors
from workloads.services import migration as migration_services
from workloads.services.backfill import backfill_request, history_missing, latest_backfill
from workloads.services.runtime_control import control_signal_send


@require_GET
@role_required(Role.VIEWER, narrowed=True)
def migrations(request):
    # Someone whose only roles are environment overrides sees the plans and candidates of those
    # environments (a plan only when both its classes are there).
    environment_ids = readable_environment_ids(request.user)
    ranking = migration_selectors.migration_candidates(now=timezone.now(), environment_ids=environment_ids)
    context = {
        "plans": migration_selectors.plans(environment_ids=environment_ids),
        "ranking": ranking,
        "best": migration_selectors.best_candidate(ranking),
        "form": PlanForm(),
        "can_create": has_role(request.user, Role.ADMIN),
    }
    return render_page(request, "dashboards/migrations.html", "plans", context)


@require_POST
@role_required(Role.ADMIN)
def migration_create(request):
    form = PlanForm(request.POST)
    if not form.is_valid():
        for field, problems in form.errors.items():
            messages.error(request, f"{field}: {' '.join(problems)}")
        return redirect("dashboards:migrations")
    data = dict(form.cleaned_data)
    try:
        plan = migration_services.migration_plan_create(
            actor=request.user, name=data.pop("name"), source=data.pop("source"), target=data.pop("target"), **data
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("dashboards:migrations")
    messages.success(request, "Plan created in its baseline phase: nothing is routed yet.")
    return redirect("dashboards:migration-detail", pk=plan.pk)


BASELINE_BEFORE = migration_services.BASELINE_BEFORE


def _plan_or_404(pk: int, *, environment_ids: set[int] | None = None):
    plan = migration_selectors.plan_for_detail(pk, environment_ids=environment_ids)
    if plan is None:
        raise Http404("No such migration plan.")
    return plan


@require_GET
@role_required(Role.VIEWER, narrowed=True)
def migration_detail(request, pk: int):
    plan = _plan_or_404(pk, environment_ids=readable_environment_ids(request.user))
    report = migration_selectors.plan_evidence(plan, now=timezone.now())
    steps = [Phase.BASELINE, Phase.CANARY, Phase.RAMP, Phase.CUT_OVER]
    context = {
        "plan": plan,
        "report": report,
        "steps": [(p, p.label, plan.route_percent_for(p)) for p in steps],
        "next_phases": [(p, p.label, plan.route_percent_for(p)) for p in FORWARD[Phase(plan.phase)]],
        "decisions": plan.decisions.select_related("action").all(),
        "csv_url": reverse("api:migration-plan-evidence", args=[plan.pk]) + "?format=csv",
        "route_percent": plan.source.route_percent if plan.source.route_to_id == plan.target_id else 0,
        # The old side's week before the plan: read from Cloud Monitoring when it is missing.
        "baseline_start": plan.created_at - BASELINE_BEFORE,
        "baseline_missing": history_missing(plan.source, start=plan.created_at - BASELINE_BEFORE, end=plan.created_at),
        "backfill": latest_backfill(plan.source),
        # The buttons follow the role in the classes' environments, as their views do.
        "can_backfill": environment_role(request.user, plan.source.environment_id) >= Role.OPERATOR,
        "can_step": all(
            environment_role(request.user, side.environment_id) >= Role.OPERATOR for side in (plan.source, plan.target)
        ),
    }
    return render_page(request, "dashboards/migration_detail.html", "evidence", context)


def _step(request, pk: int, to_phase: str):
    plan = _plan_or_404(pk)
    try:
        decision = migration_services.migration_plan_advance(
            plan=plan,
            to_phase=to_phase,
            actor=request.user,
            reason=request.POST.get("reason", "")[:2000],
            override=request.POST.get("override") == "on",
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("dashboards:migration-detail", pk=plan.pk)
    messages.success(
        request,
        f"{Phase(to_phase).label}: routing {plan.route_percent_for(to_phase)} % to {plan.target.slug} "
        f"(gate: {decision.verdict}{', overridden' if decision.overridden else ''}).",
    )
    return redirect("dashboards:action-detail", action_id=decision.action_id)


def plan_environments(request) -> list:
    """The environments of the plan in the URL's two sides: a step changes both, so it needs the role
    in each (an unknown plan: the user's own role, then the view answers 404)."""
    plan = migration_selectors.plan_for_detail(request.resolver_match.kwargs["pk"])
    return [None] if plan is None else [plan.source.environment, plan.target.environment]


@require_POST
@role_required(Role.OPERATOR, environment=plan_environments)
def migration_advance(request, pk: int):
    return _step(request, pk, request.POST.get("to_phase", ""))


@require_POST
@role_required(Role.OPERATOR, environment=plan_environments)
def migration_rollback(request, pk: int):
    return _step(request, pk, Phase.ROLLED_BACK)


@require_POST
@role_required(Role.OPERATOR)
def class_control_signal(request, slug: str):
    """Send pause or resume to an observed runtime's control webhook (the escape hatch)."""
    workload_class = WorkloadClass.objects.filter(slug=slug).first()
    if workload_class is None:
        raise Http404(f"No workload class {slug!r}.")
    try:
        signal = control_signal_send(
            workload_class=workload_class,
            kind=request.POST.get("kind", ""),
            actor=request.user,
            reason=request.POST.get("reason", "")[:2000],
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{signal.get_kind_display()} signal sent to {slug}; acknowledged ones show below.")
    return redirect(reverse("dashboards:class-detail", args=[slug]) + "#runtime-control")


@require_POST
@role_required(Role.OPERATOR)
def class_backfill(request, slug: str):
    """Read the class's past from Cloud Monitoring (an action); from the plan and comparison
    screens, with the period they lack (or all Monitoring keeps)."""
    workload_class = WorkloadClass.objects.filter(slug=slug).first()
    if workload_class is None:
        raise Http404(f"No workload class {slug!r}.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=False):
        back = reverse("dashboards:class-detail", args=[slug])
    bounds = {}
    for name in ("start", "end"):
        raw = request.POST.get(name, "")
        if raw:
            moment = parse_datetime(raw)
            if moment is None:
                messages.error(request, f"{name}: not a date and time ({raw[:40]!r}).")
                return redirect(back)
            bounds[name] = moment
    try:
        action = backfill_request(
            workload_class=workload_class, actor=request.user, reason=request.POST.get("reason", "")[:2000], **bounds
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    messages.success(request, f"Reading {slug}'s past from Cloud Monitoring: {action.target}.")
    return redirect("dashboards:action-detail", action_id=action.pk)
