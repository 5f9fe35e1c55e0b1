"""A class's page: its SLO cards, charts with their markers, and recent history."""

from datetime import timedelta

from django.conf import settings
from django.http import Http404
from django.utils import timezone
from django.views.decorators.http import require_GET

from controlplane.roles import Role
from dashboards.charts import CHART_RANGES, build_charts, chart_markers, chart_range
from dashboards.pool_views import class_operations_context
from dashboards.rendering import render_page as _render
from dashboards.rendering import role_required
from dashboards.rendering import wants_fragment as _wants_fragment
from workloads.models import SloKind
from workloads.selectors import deployments as deployment_selectors
from workloads.selectors import fleet
from workloads.selectors import runtimes as runtime_selectors
from workloads.selectors import telemetry as telemetry_selectors
from workloads.selectors.replays import attach_replay_outcomes

# SLO cards in the order of the charts below them.
SLO_ORDER = [SloKind.QUEUE_AGE, SloKind.COMPLETION_LATENCY, SloKind.SUCCESS_RATIO]


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
    # One read each serves the markers (those in range) and the page's lists (the newest ten). The
    # changes since `start` are a prefix of the newest changes, so the newest MAX_MARKERS filtered
    # to the range are exactly the range's newest MAX_MARKERS.
    deployments = deployment_selectors.class_deployments(workload_class=workload_class, limit=fleet.MAX_MARKERS)
    changes = fleet.class_config_changes(workload_class=workload_class)
    markers = chart_markers(
        actions=fleet.class_actions_in_range(workload_class=workload_class, start=start, end=end),
        changes=[event for event in changes if event.occurred_at >= start],
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
            recent_changes=changes[:10],
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
