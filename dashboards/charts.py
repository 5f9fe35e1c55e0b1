"""The class detail charts: which charts exist, their time ranges, and the JSON each one embeds
for `static/js/charts.js` (rendered with `json_script` by `dashboards/partials/chart.html`).

JSON shape (one chart):
    {"title": str, "unit": "s" | "count" | "per_min" | "instances" | <ISO currency>,
     "start": epoch s, "end": epoch s, "x": [epoch s, ...],
     "series": [{"label": str, "values": [float | null, ...]}],     # aligned with x
     "threshold": {"value": float, "label": str} | null,            # e.g. the SLO line
     "markers": [{"t": epoch s, "label": str, "when": str}],        # actions on the time axis
     "fetched_at": ISO 8601 | null, "newest_sample_at": ISO 8601 | null}
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from workloads.models import AuditEvent, Slo, SloKind, WorkloadClass
from workloads.selectors.fleet import ClassSeries


@dataclass(frozen=True)
class ChartRange:
    key: str
    label: str
    span: timedelta
    step_seconds: int  # keeps every range at a few hundred points at most


CHART_RANGES = (
    ChartRange("1h", "1 hour", timedelta(hours=1), 60),
    ChartRange("6h", "6 hours", timedelta(hours=6), 60),
    ChartRange("24h", "24 hours", timedelta(hours=24), 300),
    ChartRange("7d", "7 days", timedelta(days=7), 3600),
    ChartRange("30d", "30 days", timedelta(days=30), 3600),
)
RANGES_BY_KEY = {r.key: r for r in CHART_RANGES}
DEFAULT_RANGE = "6h"


def chart_range(key: str | None) -> ChartRange:
    """The range for a `?range=` value; unknown or missing values fall back to the default."""
    return RANGES_BY_KEY.get(key or "", RANGES_BY_KEY[DEFAULT_RANGE])


@dataclass(frozen=True)
class ChartDefinition:
    key: str
    title: str
    unit: str
    series: tuple[tuple[str, str], ...]  # (series key in ClassSeries.values, legend label)
    slo_kind: str | None = None  # draw this SLO's threshold as a horizontal line


CHART_DEFINITIONS = (
    ChartDefinition("queue-age", "Queue age", "s", (("queue_age", "Oldest unacked"),), SloKind.QUEUE_AGE),
    ChartDefinition("backlog", "Backlog", "count", (("backlog", "Undelivered"), ("dead_letters", "Dead letters"))),
    ChartDefinition(
        "latency",
        "Completion latency",
        "s",
        (("latency_p50", "p50"), ("latency_p95", "p95"), ("latency_p99", "p99")),
        SloKind.COMPLETION_LATENCY,
    ),
    ChartDefinition(
        "throughput", "Throughput and failures", "per_min", (("completed", "Completed"), ("failed", "Failed"))
    ),
    ChartDefinition("instances", "Instances", "instances", (("instances", "Instances"),)),
    ChartDefinition("cost", "Cost", "currency", (("cost", "Cost per step"),)),
)

# Audit actions as they read on a chart marker; unknown actions show their code.
ACTION_LABELS = {
    "workload_class.create": "class created",
    "workload_class.update": "settings changed",
}


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action.replace("_", " ").replace(".", ": "))


def slo_summary(slo: Slo) -> str:
    """'p95 < 120 s' for threshold SLOs, '99.9 % succeed' for the success ratio."""
    if slo.kind == SloKind.SUCCESS_RATIO:
        return f"{slo.target_percent.normalize():f} % succeed"
    return f"p{slo.percentile.normalize():f} < {seconds_label(slo.threshold_seconds)}"


def seconds_label(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    if seconds < 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} d"


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass
class Chart:
    key: str
    title: str
    unit: str
    start: datetime
    end: datetime
    x: list[int]
    series: list[dict]
    threshold: dict | None = None
    markers: list[dict] = field(default_factory=list)
    fetched_at: datetime | None = None
    newest_sample_at: datetime | None = None

    @property
    def script_id(self) -> str:
        return f"chart-data-{self.key}"

    @property
    def is_empty(self) -> bool:
        return not self.x or all(v is None for s in self.series for v in s["values"])

    @property
    def summary(self) -> str:
        """A text alternative for the canvas: the latest value of each series."""
        parts = []
        for s in self.series:
            latest = next((v for v in reversed(s["values"]) if v is not None), None)
            parts.append(f"{s['label']} latest {latest:g}" if latest is not None else f"{s['label']} no data")
        if self.threshold:
            parts.append(self.threshold["label"])
        return f"{self.title}: " + "; ".join(parts)

    def payload(self) -> dict:
        return {
            "title": self.title,
            "unit": self.unit,
            "start": _epoch(self.start),
            "end": _epoch(self.end),
            "x": self.x,
            "series": self.series,
            "threshold": self.threshold,
            "markers": self.markers,
            "fetched_at": _iso(self.fetched_at),
            "newest_sample_at": _iso(self.newest_sample_at),
        }


def build_charts(
    *,
    workload_class: WorkloadClass,
    series: ClassSeries,
    events: list[AuditEvent],
    start: datetime,
    end: datetime,
) -> list[Chart]:
    """One Chart per definition, from the class's series, SLOs (threshold lines) and audit events
    (markers). Uses the prefetched SLOs and cost rates: no queries."""
    slos = {slo.kind: slo for slo in workload_class.slos.all()}
    currency = workload_class.cost_rates.currency if workload_class.cost_rates else "USD"
    markers = [
        {
            "t": _epoch(e.occurred_at),
            "label": f"{action_label(e.action)} ({e.actor_label})",
            "when": f"{e.occurred_at:%a %d %b %H:%M} UTC",
        }
        for e in sorted(events, key=lambda e: e.occurred_at)
        if start <= e.occurred_at <= end
    ]
    charts = []
    for definition in CHART_DEFINITIONS:
        slo = slos.get(definition.slo_kind) if definition.slo_kind else None
        threshold = None
        if slo is not None and slo.threshold_seconds is not None:
            threshold = {"value": slo.threshold_seconds, "label": f"SLO {slo_summary(slo)}"}
        charts.append(
            Chart(
                key=definition.key,
                title=definition.title,
                unit=currency if definition.unit == "currency" else definition.unit,
                start=start,
                end=end,
                x=list(series.x),
                series=[
                    {"label": label, "values": list(series.values.get(key, []))} for key, label in definition.series
                ],
                threshold=threshold,
                markers=markers,
                fetched_at=series.fetched_at,
                newest_sample_at=series.newest_sample_at,
            )
        )
    return charts
