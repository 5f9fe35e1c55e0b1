"""Incident mode in the browser: the current state with per-pool counts and the enter or exit
action's progress, enter (a preview of the pools it pauses and their current counts, then a
confirmation), extend, exit, and the history of past incidents. Also the migration comparison.

The services are the REST API's (`workloads.services.incidents`); entering and exiting answer with
a whole-page redirect, so the banner every page shows appears or goes at once.
"""

import re
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import BadRequest, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from controlplane.roles import Role, readable_environment_ids
from dashboards.forms.expiry import ExtendForm
from dashboards.forms.incidents import CompareForm, ExitForm, IncidentEnterForm
from dashboards.rendering import add_service_errors, role_required, selected_environment, with_toasts
from dashboards.rendering import render_page as _render
from dashboards.rendering import wants_fragment as _wants_fragment
from workloads.errors import ApplicationError
from workloads.models import Deployment, HoldState, IncidentMode, WorkloadClass
from workloads.runtimes import Runtime
from workloads.selectors import comparison as comparison_selectors
from workloads.selectors import incidents as incident_selectors
from workloads.selectors.deployments import deployment_periods
from workloads.services import incidents as services
from workloads.services.backfill import history_missing

HISTORY_PAGE_SIZE = 10


def _default_minutes() -> int:
    return settings.INCIDENT_DEFAULT_EXPIRY_MINUTES


def _state_context(environment=None) -> dict:
    """The active incident, or the last one while its pools are still being restored: of the
    environment the screens are narrowed to (the switcher), or for every environment."""
    active = incident_selectors.active_incident(environment, any_environment=False)
    if environment is not None and active is not None and active.environment_id is None:
        active = None  # one for every environment shows when no environment is chosen; it is ended there
    incident = active or IncidentMode.objects.select_related("exit_action").filter(environment=environment).first()
    holds = []
    if incident is not None:
        holds = list(incident_selectors.incident_holds(incident).select_related("workload_class__pool_control"))
    moving = None
    if incident is not None:
        for action in (incident.exit_action, incident.enter_action):
            if action is not None and not action.is_final:
                moving = action
                break
    return {
        "active": active,
        "incident": incident,
        "holds": holds,
        "moving": moving,
        "now": timezone.now(),
    }


def _page_context(request, *, enter_form=None, preview=None, extend_form=None) -> dict:
    environment = selected_environment(request)
    history = incident_selectors.incident_history()
    if environment is not None:
        history = history.filter(environment=environment)
    history = Paginator(history, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    deferrable = WorkloadClass.objects.filter(tier="deferrable").order_by("slug")
    if environment is not None:
        deferrable = deferrable.filter(environment=environment)
    return {
        **_state_context(environment),
        "incident_environment": environment,
        "enter_form": enter_form or IncidentEnterForm(default_minutes=_default_minutes()),
        "extend_form": extend_form or ExtendForm(default_minutes=_default_minutes()),
        "exit_form": ExitForm(),
        "preview": preview,
        "history": history,
        "deferrable": deferrable.values_list("slug", flat=True),
    }


@require_GET
@role_required(Role.VIEWER)
def incidents(request):
    if _wants_fragment(request) and request.htmx.target == "incident-history":
        return render(request, "dashboards/incidents.html#incident-history", _page_context(request))
    context = _page_context(request)
    response = _render(request, "dashboards/incidents.html", "incident-state", context)
    if _wants_fragment(request) and request.htmx.target == "incident-state" and context["moving"] is None:
        _settled(request, response, context)
    return response


def _settled(request, response, context: dict) -> None:
    """The state polls itself only while an enter or exit action runs, so an answer without one
    is the last poll: the history on the same page and the toast that announced the action
    ("being restored") would otherwise keep saying what is no longer true. Both come along out of
    band, the toast replaced by what the action did."""
    incident, holds = context["incident"], context["holds"]
    if incident is None:
        return
    failed = [hold for hold in holds if hold.last_error or hold.state == HoldState.FAILED]
    problems = f" {len(failed)} need{'s' if len(failed) == 1 else ''} attention: see the table." if failed else ""
    if context["active"] is not None:
        paused = sum(1 for hold in holds if hold.state == HoldState.ACTIVE and hold.paused_at)
        text = f"Incident mode is on: {paused} pool{'s' if paused != 1 else ''} paused.{problems}"
    else:
        restored = sum(1 for hold in holds if hold.state == HoldState.RESTORED)
        text = f"Incident #{incident.pk} ended: {restored} pool{'s' if restored != 1 else ''} restored.{problems}"
    (messages.warning if failed else messages.success)(request, text)
    response.content += render_to_string(
        "dashboards/incidents.html#incident-history", {**context, "oob": True}, request=request
    ).encode()
    with_toasts(request, response)


def _to_incidents(request):
    """A whole-page move to the incidents screen: the banner on it follows the new state."""
    if request.htmx:
        return HttpResponseClientRedirect(reverse("dashboards:incidents"))
    return redirect("dashboards:incidents")


@require_POST
@role_required(Role.OPERATOR, environment=selected_environment)
def incident_enter(request):
    """First submission: the preview (pools, current counts, retention warnings); with
    `confirm`: enter incident mode (in the environment the screens are narrowed to, if any)."""
    environment = selected_environment(request)
    form = IncidentEnterForm(request.POST, default_minutes=_default_minutes())
    if not form.is_valid():
        return _enter_page(request, form, status=400)
    expires_in = timedelta(minutes=form.cleaned_data["expires_in_minutes"])
    if request.POST.get("step") != "confirm":
        preview = incident_selectors.incident_enter_preview(expires_in=expires_in, environment=environment)
        return _enter_page(request, form, preview=preview)
    try:
        result = services.incident_mode_enter(
            actor=request.user,
            reason=form.cleaned_data["reason"],
            ticket=form.cleaned_data.get("ticket") or "",
            expires_in=expires_in,
            environment=environment,
        )
    except ValidationError as exc:
        add_service_errors(form, exc)
        return _enter_page(request, form, status=400)
    if result.changed:
        messages.success(request, "Incident mode entered: the deferrable pools are being paused.")
    else:
        messages.info(request, "Incident mode was already active; nothing new was done.")
    for warning in result.warnings:
        messages.warning(request, warning)
    return _to_incidents(request)


def _enter_page(request, form, *, preview=None, status: int = 200):
    context = _page_context(request, enter_form=form, preview=preview)
    if request.htmx:  # htmx swaps only 2xx answers, and the errors are what to show
        return render(request, "dashboards/incidents.html#enter-panel", context)
    return render(request, "dashboards/incidents.html", context, status=status)


@require_POST
@role_required(Role.OPERATOR, environment=selected_environment)
def incident_extend(request):
    environment = selected_environment(request)
    form = ExtendForm(request.POST, default_minutes=_default_minutes())
    if form.is_valid():
        try:
            result = services.incident_mode_extend(
                actor=request.user,
                expires_in=timedelta(minutes=form.cleaned_data["expires_in_minutes"]),
                environment=environment,
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Incident mode now ends at {result.incident.expires_at:%a %d %b %H:%M} UTC.")
            for warning in result.warnings:
                messages.warning(request, warning)
    else:
        messages.error(request, "Choose how long incident mode should last from now.")
    return _to_incidents(request)


@require_POST
@role_required(Role.OPERATOR, environment=selected_environment)
def incident_exit(request):
    environment = selected_environment(request)
    form = ExitForm(request.POST)
    form.is_valid()
    try:
        result = services.incident_mode_exit(
            actor=request.user, reason=form.cleaned_data.get("reason") or "", environment=environment
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        if result.changed:
            messages.success(request, "Incident mode exited: the paused pools are being restored.")
        else:
            messages.info(request, "Incident mode is not active; nothing new was done.")
    return _to_incidents(request)


# --- Migration comparison -------------------------------------------------------------------------------
@require_GET
@role_required(Role.VIEWER, narrowed=True)
def compare(request):
    # Someone whose only roles are environment overrides compares the classes of those environments.
    environment_ids = readable_environment_ids(request.user)
    classes = WorkloadClass.objects.select_related("cost_rates").order_by("slug")
    if environment_ids is not None:
        classes = classes.filter(environment_id__in=environment_ids)
    classes = list(classes)
    now = timezone.now()
    today = now.date()
    # Without a choice yet: the class's last 7 days against the 7 before them.
    defaults = {
        "a_class": classes[0].slug if classes else "",
        "a_start": (today - timedelta(days=13)).isoformat(),
        "a_end": (today - timedelta(days=7)).isoformat(),
        "b_start": (today - timedelta(days=6)).isoformat(),
        "b_end": today.isoformat(),
    }
    around = _deployment_boundary(request, now, environment_ids=environment_ids)
    if around is not None:
        deployment, before, after = around
        # The form shows the days the two periods fall in; the table compares the exact hours.
        defaults = {
            "a_class": deployment.workload_class.slug,
            "a_start": before.start.date().isoformat(),
            "a_end": before.end.date().isoformat(),
            "b_start": after.start.date().isoformat(),
            "b_end": after.end.date().isoformat(),
        }
    form = CompareForm(defaults if around is not None or not request.GET else request.GET, classes=classes)
    result = None
    if around is not None:
        result = comparison_selectors.comparison(a=around[1], b=around[2], now=now)
    elif classes and form.is_valid():
        data = form.cleaned_data
        by_slug = {wc.slug: wc for wc in classes}
        a_class = by_slug[data["a_class"]]
        b_class = by_slug.get(data.get("b_class") or "", a_class)
        periods = [
            comparison_selectors.Period(wc, *CompareForm.bounds(data[f"{side}_start"], data[f"{side}_end"], now))
            for side, wc in (("a", a_class), ("b", b_class))
        ]
        result = comparison_selectors.comparison(a=periods[0], b=periods[1], now=now)
    context = {
        "form": form,
        "result": result,
        "backfill_offers": _backfill_offers(result),
        "classes": classes,
        "now": now,
        "deployment": around[0] if around is not None else None,
        "hours": int((around[1].end - around[1].start).total_seconds() // 3600) if around is not None else None,
    }
    return _render(request, "dashboards/compare.html", "compare-result", context)


def _backfill_offers(result) -> list[dict]:
    """The compared periods of observed runtimes that lack history: the screen offers to read them
    from Cloud Monitoring (workloads/services/backfill.py)."""
    if result is None:
        return []
    offers, seen = [], set()
    for figures in (result.a, result.b):
        period = figures.period
        key = (period.workload_class.pk, period.start, period.end)
        if period.workload_class.runtime == Runtime.WORKER_POOL or key in seen:
            continue
        seen.add(key)
        if history_missing(period.workload_class, start=period.start, end=period.end):
            offers.append({"slug": period.workload_class.slug, "start": period.start, "end": period.end})
    return offers


def _deployment_boundary(request, now, *, environment_ids: set[int] | None = None):
    """(deployment, before, after) for `?deployment=<id>&hours=<1-24>`, None without it; a bad
    id or hours is a 404 or 400 rather than a silent fallback to the default periods, as is a
    deployment of a class outside `environment_ids` (None: every environment)."""
    raw = request.GET.get("deployment")
    if raw is None:
        return None
    hours = request.GET.get("hours", "1")
    # ASCII digits only: str.isdigit() accepts '²', which int() refuses.
    if not re.fullmatch(r"[0-9]{1,18}", raw) or not re.fullmatch(r"[0-9]{1,2}", hours):
        raise BadRequest("deployment and hours are whole numbers.")
    deployments = Deployment.objects.select_related("workload_class__cost_rates").filter(pk=int(raw))
    if environment_ids is not None:
        deployments = deployments.filter(workload_class__environment_id__in=environment_ids)
    deployment = deployments.first()
    if deployment is None:
        raise Http404(f"No deployment {raw}.")
    try:
        before, after = deployment_periods(deployment, hours=int(hours), now=now)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return deployment, before, after
