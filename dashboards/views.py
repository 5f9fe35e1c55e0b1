import zoneinfo
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from controlplane.roles import Role
from dashboards.charts import CHART_RANGES, build_charts, chart_markers, chart_range
from dashboards.forms import ActionFilterForm, AuditFilterForm, CostForm, FleetFilterForm, ScheduleForm
from dashboards.pool_views import class_operations_context
from dashboards.rendering import render_page as _render
from dashboards.rendering import role_required, with_toasts
from dashboards.rendering import selected_environment as _selected_environment
from dashboards.rendering import wants_fragment as _wants_fragment
from workloads.errors import ApplicationError
from workloads.models import ActionKind, SloKind
from workloads.selectors import actions as action_selectors
from workloads.selectors import audit as audit_selectors
from workloads.selectors import deployments as deployment_selectors
from workloads.selectors import fleet, schedules
from workloads.selectors import runtimes as runtime_selectors
from workloads.selectors import telemetry as telemetry_selectors
from workloads.selectors.cost import cost_report
from workloads.selectors.fleet_page import FleetFilters, fleet_page
from workloads.selectors.replays import attach_replay_outcomes, outcome_still_watched, replay_outcome
from workloads.services.actions import action_cancel

# SLO cards in the order of the charts below them.
SLO_ORDER = [SloKind.QUEUE_AGE, SloKind.COMPLETION_LATENCY, SloKind.SUCCESS_RATIO]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = False
    first_descending: bool = False  # the first click shows the largest values first
    sortable: bool = True


FLEET_COLUMNS = (
    Column("status", "Status"),
    Column("name", "Class / team"),
    Column("tier", "Tier"),
    Column("queue_age", "Queue age / SLO", numeric=True, first_descending=True),
    Column("backlog", "Backlog", numeric=True, first_descending=True),
    Column("p95", "p95 latency / SLO", numeric=True, first_descending=True),
    Column("budget", "Budget left", numeric=True),
    Column("alerts", "Alerts", numeric=True, first_descending=True),
    Column("dead_letters", "Dead letters to triage", numeric=True, first_descending=True),
    Column("instances", "Instances / target", numeric=True, first_descending=True),
    Column("cost", "Cost today", numeric=True, first_descending=True),
)


def _sort_headers(current: str) -> list[dict]:
    headers = []
    for column in FLEET_COLUMNS:
        if not column.sortable:
            aria_sort = next_sort = None
        elif current.lstrip("-") == column.key:
            aria_sort = "descending" if current.startswith("-") else "ascending"
            next_sort = column.key if current.startswith("-") else f"-{column.key}"
        else:
            aria_sort = None
            next_sort = f"-{column.key}" if column.first_descending else column.key
        headers.append({"column": column, "aria_sort": aria_sort, "next_sort": next_sort})
    return headers


@require_GET
@role_required(Role.VIEWER)
def overview(request):
    form = FleetFilterForm(request.GET, teams=fleet.fleet_teams())
    filters = form.filters()
    sort = filters.pop("sort")
    filtered = FleetFilters(**filters).active  # the form's filters (Clear); the environment is the switcher's
    environment = _selected_environment(request)
    filters["environment"] = environment.slug if environment else ""
    now = timezone.now()
    # What is wrong comes first (status is the default order), fifty classes a page: the order is
    # decided in SQL and only the page's rows are built, so the page costs the same at any fleet size.
    shown = fleet_page(now=now, filters=FleetFilters(**filters), sort=sort, number=request.GET.get("page"))
    rows = shown.rows
    context = {
        "form": form,
        "rows": rows,
        "page": shown.page,
        "sort": sort,
        "headers": _sort_headers(sort),
        "filtered": filtered,
        "now": now,
        "newest_sample_at": max((r.live.newest_sample_at for r in rows if r.live.newest_sample_at), default=None),
    }
    return _render(request, "dashboards/overview.html", "fleet-rows", context)


@require_GET
@role_required(Role.VIEWER)
def class_detail(request, slug: str):
    workload_class = fleet.workload_class_for_detail(slug)
    if workload_class is None:
        raise Http404(f"No workload class {slug!r}.")
    now = timezone.now()
    selected = chart_range(request.GET.get("range"))
    detail = telemetry_selectors.class_telemetry(workload_class=workload_class, range_key=selected.key, now=now)
    # Up to now, not to the series' last whole minute: an action taken seconds ago is marked.
    start, end = detail.series.start, now
    # One read serves the markers (those in range) and the page's list (the newest ten).
    deployments = deployment_selectors.class_deployments(workload_class=workload_class, limit=fleet.MAX_MARKERS)
    markers = chart_markers(
        actions=fleet.class_actions_in_range(workload_class=workload_class, start=start, end=end),
        changes=fleet.class_config_changes(workload_class=workload_class, start=start),
        deployments=deployments,
        start=start,
        end=end,
    )
    age = detail.metric_age_seconds
    context = {
        "workload_class": workload_class,
        "metric_as_of": now - timedelta(seconds=age) if age is not None else None,
        "metric_stale": age is not None and age > settings.TELEMETRY_STALE_AFTER_SECONDS,
        "ranges": CHART_RANGES,
        "selected_range": selected,
        "charts": build_charts(workload_class=workload_class, detail=detail, markers=markers, end=now),
        "markers": markers,
        "detail": detail,
        "now": now,
    }
    if not _wants_fragment(request):
        context.update(
            slo_cards=sorted(detail.slo_cards, key=lambda card: SLO_ORDER.index(card.slo.kind)),
            # Pages before tickets, then newest first.
            active_alerts=sorted(detail.active_alerts, key=lambda alert: alert.severity != "page"),
            schedule=fleet.schedule_status(workload_class, now=now),
            recent_actions=_with_replay_outcomes(fleet.class_recent_actions(workload_class=workload_class, limit=10)),
            recent_changes=fleet.class_config_changes(workload_class=workload_class, limit=10),
            recent_deployments=deployments[:10],
            observation=runtime_selectors.class_observation(workload_class, now=now),
            control_signals=[]
            if workload_class.runs_on_worker_pool
            else runtime_selectors.class_control_signals(workload_class, now=now),
            **class_operations_context(workload_class),
        )
    return _render(request, "dashboards/class_detail.html", "class-charts", context)


def _with_replay_outcomes(actions: list) -> list:
    attach_replay_outcomes(actions)
    return actions


# --- Cost ------------------------------------------------------------------------------------------
@require_GET
@role_required(Role.VIEWER)
def cost(request):
    form = CostForm({"period": "today", "group_by": "class", **request.GET.dict()})
    now = timezone.now()
    period = form.period_range(now)
    group_by = form.grouping()
    environment = _selected_environment(request)
    report = cost_report(start=period.start, end=period.end, group_by=group_by, now=now, environment=environment)
    totals: dict[str, dict] = {}
    for line in report.lines:
        if not line.currency:
            continue
        total = totals.setdefault(line.currency, {"currency": line.currency, "total_cost": 0, "records": 0, "jobs": 0})
        total["total_cost"] += line.total_cost
        total["records"] += line.records
        total["jobs"] += line.completed
    params = {"start": period.start.isoformat(), "end": period.end.isoformat(), "group_by": group_by, "format": "csv"}
    if environment is not None:
        params["environment"] = environment.slug
    context = {
        "form": form,
        "period": period,
        "group_by": group_by,
        "report": report,
        "totals": list(totals.values()),
        "without_rates": [line for line in report.lines if not line.has_rates],
        "csv_url": f"{reverse('api:cost')}?{urlencode(params)}",
        "now": now,
        "minute_retention_days": settings.TELEMETRY_MINUTE_RETENTION_DAYS,
    }
    return _render(request, "dashboards/cost.html", "cost-report", context)


# --- Audit log -------------------------------------------------------------------------------------
AUDIT_PAGE_SIZE = 50


@require_GET
@role_required(Role.VIEWER)
def audit_log(request):
    form = AuditFilterForm(request.GET or None)
    filters = form.filters()
    page = Paginator(audit_selectors.audit_events(**filters), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "filtered": any(filters.values()),
        "known_actions": audit_selectors.KNOWN_ACTIONS,
        "class_slugs": [wc.slug for wc in fleet.classes_for_choice()],
    }
    return _render(request, "dashboards/audit.html", "audit-results", context)


# --- Actions ---------------------------------------------------------------------------------------
ACTIONS_PAGE_SIZE = 50
STEPS_PAGE_SIZE = 50


@require_GET
@role_required(Role.VIEWER)
def action_list(request):
    form = ActionFilterForm(request.GET or None, classes=[wc.slug for wc in fleet.classes_for_choice()])
    filters = form.filters()
    page = Paginator(action_selectors.action_list(**filters), ACTIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)  # the rows the outcomes are attached to are the ones shown
    attach_replay_outcomes(page.object_list)
    context = {
        "form": form,
        "page": page,
        "filtered": any(filters.values()),
        # The list refreshes itself only while something on it can still move.
        "any_running": any(not action.is_final for action in page),
    }
    return _render(request, "dashboards/actions.html", "action-rows", context)


def _action_or_404(action_id: int):
    action = action_selectors.action_for_detail(action_id)
    if action is None:
        raise Http404(f"No action #{action_id}.")
    return action


def _steps_context(request, action) -> dict:
    failed_first = request.GET.get("failed_first") == "1"
    steps = action_selectors.action_steps(action=action, failed_first=failed_first)
    return {
        "steps_page": Paginator(steps, STEPS_PAGE_SIZE).get_page(request.GET.get("page")),
        "failed_first": failed_first,
    }


@require_GET
@role_required(Role.VIEWER)
def action_detail(request, action_id: int):
    """The action with its progress and its steps; htmx asks this URL for the steps table only
    (pagination, "failed first", and a refresh after each progress poll)."""
    action = _action_or_404(action_id)
    context = {"action": action, **_steps_context(request, action)}
    return _render(request, "dashboards/action_detail.html", "action-steps", context)


def _progress_response(request, action) -> HttpResponse:
    """The progress panel. While the action can still move, the panel polls itself every 2 s;
    once it has ended, the answer carries htmx's "stop polling" status (286) with the final
    panel, so the last poll both shows the outcome and ends the polling."""
    html = render_to_string("dashboards/action_detail.html#action-progress", {"action": action}, request=request)
    # A finished replay is still watched while its published messages have no outcome yet.
    watching = outcome_still_watched(action, replay_outcome(action), now=timezone.now())
    response = HttpResponseStopPolling(html) if action.is_final and not watching else HttpResponse(html)
    # The steps table listens for this to refresh its own rows.
    trigger_client_event(response, "action-progressed", {"id": action.pk, "state": action.state})
    if action.kind == ActionKind.REPLAY and action.is_final and request.GET.get("ended") != "1":
        # The poll that sees the replay end (a panel still watching its messages asks with
        # ended=1): the dead-letter list under the panel shows the rows' new status.
        trigger_client_event(response, "dead-letters-changed", {"id": action.pk})
    patch_vary_headers(response, ("HX-Request",))
    return response


@require_GET
@role_required(Role.VIEWER)
def action_progress(request, action_id: int):
    action = _action_or_404(action_id)
    if not _wants_fragment(request):
        return redirect("dashboards:action-detail", action_id=action.pk)
    return _progress_response(request, action)


@require_POST
@role_required(Role.OPERATOR)
def action_cancel_view(request, action_id: int):
    action = _action_or_404(action_id)
    try:
        action = action_cancel(action=action, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        action.refresh_from_db()
    else:
        if action.is_final:
            messages.success(request, f"Action #{action.pk} was cancelled before it started.")
        else:
            messages.success(request, f"Cancel requested: action #{action.pk} stops after its current step.")
    if request.htmx:
        response = _progress_response(request, action)
        return with_toasts(request, response)
    return redirect("dashboards:action-detail", action_id=action.pk)


# --- Schedules ---------------------------------------------------------------------------------------
@require_GET
@role_required(Role.VIEWER)
def schedule_week(request):
    classes = schedules.schedule_classes()
    form = ScheduleForm(request.GET or None, classes=[(wc.slug, f"{wc.name} ({wc.slug})") for wc in classes])
    slug, tz_name = form.choice()
    workload_class = schedules.class_with_schedules(slug or (classes[0].slug if classes else ""))
    now = timezone.now()
    context = {
        "form": form,
        "classes": classes,
        "workload_class": workload_class,
        "tz_name": tz_name,
        "time_zones": sorted(zoneinfo.available_timezones()),
        "hours": range(24),
        "now": now,
    }
    if workload_class is not None:
        context["grid"] = schedules.week_grid(workload_class=workload_class, tz_name=tz_name, now=now)
        context["target_preview"] = schedules.target_preview(workload_class=workload_class, now=now)
    return _render(request, "dashboards/schedules.html", "schedule-grid", context)
