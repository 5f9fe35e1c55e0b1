"""The overview: the fleet's table, what is wrong first."""

from dataclasses import dataclass

from django.utils import timezone
from django.views.decorators.http import require_GET

from controlplane.roles import Role
from dashboards.forms.overview import FleetFilterForm
from dashboards.rendering import render_page as _render
from dashboards.rendering import role_required
from dashboards.rendering import selected_environment as _selected_environment
from workloads.selectors import fleet
from workloads.selectors.fleet_page import FleetFilters, fleet_page


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
@role_required(Role.VIEWER, narrowed=True)
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
