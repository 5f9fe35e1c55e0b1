"""The cost screen: a period's cost by class, team or tier, with totals per currency."""

from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from controlplane.roles import Role
from dashboards.forms.cost import CostForm
from dashboards.rendering import render_page as _render
from dashboards.rendering import role_required
from dashboards.rendering import selected_environment as _selected_environment
from workloads.selectors.cost import cost_report


@require_GET
@role_required(Role.VIEWER, narrowed=True)
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
