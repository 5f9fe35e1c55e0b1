from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseClientRedirect

from controlplane.roles import Role, has_role
from dashboards.charts import CHART_RANGES, build_charts, chart_range
from dashboards.forms import FleetFilterForm
from workloads.models import SloKind
from workloads.selectors import fleet

# SLO cards in the order of the charts below them.
SLO_ORDER = [SloKind.QUEUE_AGE, SloKind.COMPLETION_LATENCY, SloKind.SUCCESS_RATIO]


def login_required_htmx(view):
    """Django's login_required, except that an htmx request (a 15 s refresh after the session
    expired) sends the whole tab to the login page instead of swapping it into the table."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            back_to = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(redirect_to_login(back_to)["Location"])
        return redirect_to_login(request.get_full_path())

    return wrapper


def _require_role(request, role: Role) -> None:
    if not has_role(request.user, role):
        raise PermissionDenied(f"This page needs the {role.name.lower()} role.")


def _wants_fragment(request) -> bool:
    # A history restore (back button after the cache was evicted) needs the whole page.
    return bool(request.htmx) and not request.htmx.history_restore_request


def _render(request, template: str, fragment: str, context: dict) -> HttpResponse:
    """The full page, or only `fragment` for htmx; the same URL serves both, so caches must
    keep them apart."""
    name = f"{template}#{fragment}" if _wants_fragment(request) else template
    response = render(request, name, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = False
    first_descending: bool = False  # the first click shows the largest values first
    sortable: bool = True


FLEET_COLUMNS = (
    Column("status", "Status"),
    Column("name", "Class"),
    Column("team", "Team"),
    Column("tier", "Tier"),
    Column("queue_age", "Queue age / SLO", numeric=True, first_descending=True),
    Column("backlog", "Backlog", numeric=True, first_descending=True),
    Column("p95", "p95 latency", numeric=True, first_descending=True),
    Column("budget", "Budget", numeric=True),
    Column("alerts", "Alerts", numeric=True, first_descending=True),
    Column("dead_letters", "Dead letters", numeric=True, first_descending=True),
    Column("instances", "Instances / bounds", numeric=True, first_descending=True),
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
@login_required_htmx
def overview(request):
    _require_role(request, Role.VIEWER)
    form = FleetFilterForm(request.GET, teams=fleet.fleet_teams())
    filters = form.filters()
    now = timezone.now()
    rows = fleet.fleet_rows(now=now, **filters)
    context = {
        "form": form,
        "rows": rows,
        "sort": filters["sort"],
        "headers": _sort_headers(filters["sort"]),
        "filtered": bool(filters["search"] or filters["team"] or filters["tier"]),
        "now": now,
        "newest_sample_at": max((r.live.newest_sample_at for r in rows if r.live.newest_sample_at), default=None),
    }
    return _render(request, "dashboards/overview.html", "fleet-rows", context)


@require_GET
@login_required_htmx
def class_detail(request, slug: str):
    _require_role(request, Role.VIEWER)
    workload_class = fleet.workload_class_for_detail(slug)
    if workload_class is None:
        raise Http404(f"No workload class {slug!r}.")
    now = timezone.now()
    selected = chart_range(request.GET.get("range"))
    start = now - selected.span
    series = fleet.class_series(workload_class=workload_class, start=start, end=now, step_seconds=selected.step_seconds)
    markers = fleet.class_events(workload_class=workload_class, start=start, limit=50)
    context = {
        "workload_class": workload_class,
        "ranges": CHART_RANGES,
        "selected_range": selected,
        "charts": build_charts(workload_class=workload_class, series=series, events=markers, start=start, end=now),
        "series": series,
        "now": now,
    }
    if not _wants_fragment(request):
        context.update(
            slos=sorted(workload_class.slos.all(), key=lambda slo: SLO_ORDER.index(slo.kind)),
            schedule=fleet.schedule_status(workload_class, now=now),
            recent_events=fleet.class_events(workload_class=workload_class, limit=10),
        )
    return _render(request, "dashboards/class_detail.html", "class-charts", context)
