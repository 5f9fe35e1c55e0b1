"""The class detail charts: which charts exist, their time ranges, and the JSON each one embeds
for `static/js/charts.js` (rendered with `json_script` by `dashboards/partials/chart.html`).

The numbers come from `workloads.selectors.telemetry.class_telemetry` (rollups, a bounded number
of steps per range); this module only decides how they are drawn.

JSON shape (one chart):
    {"title": str, "unit": "s" | "count" | "per_min" | "instances" | <ISO currency>,
     "start": epoch s, "end": epoch s, "x": [epoch s, ...],
     "zoom_group": str,                                            # charts sharing a crosshair and zoom
     "series": [{"label": str, "values": [float | null, ...]}],     # aligned with x
     "threshold": {"value": float, "label": str} | null,            # e.g. the SLO line
     "markers": [{"t": epoch s, "label": str, "when": str, "kind": "action" | "change" | "deploy"}],
     "fetched_at": ISO 8601 | null, "newest_sample_at": ISO 8601 | null}
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from workloads.models import Action, AuditEvent, Deployment, Slo, SloKind, WorkloadClass
from workloads.selectors.series import CHART_RANGES as TELEMETRY_RANGES
from workloads.selectors.telemetry import ClassDetailTelemetry


@dataclass(frozen=True)
class ChartRange:
    key: str
    label: str
    span: timedelta
    step_seconds: int  # the telemetry selector's step: a few hundred points at most


_RANGE_LABELS = {"1h": "1 hour", "6h": "6 hours", "24h": "24 hours", "7d": "7 days", "30d": "30 days"}
# Spans and steps are the telemetry selector's, so the page and the API agree on every range.
CHART_RANGES = tuple(ChartRange(key, _RANGE_LABELS[key], span, step) for key, (span, step) in TELEMETRY_RANGES.items())
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
    series: tuple[tuple[str, str], ...]  # (telemetry series name, legend label)
    slo_kind: str | None = None  # draw this SLO's threshold as a horizontal line
    # Counters are drawn as a rate per this many seconds, so every range (and step) reads the same.
    rate_per: int | None = None


CHART_DEFINITIONS = (
    ChartDefinition("queue-age", "Queue age", "s", (("oldest_unacked_age", "Oldest unacked"),), SloKind.QUEUE_AGE),
    ChartDefinition(
        "backlog", "Backlog", "count", (("backlog", "Undelivered"), ("dead_letter_backlog", "Dead letters"))
    ),
    ChartDefinition(
        "latency",
        "Completion latency",
        "s",
        (("latency_p50", "p50"), ("latency_p95", "p95"), ("latency_p99", "p99")),
        SloKind.COMPLETION_LATENCY,
    ),
    ChartDefinition(
        "throughput",
        "Throughput and failures",
        "per_min",
        (("completed", "Completed"), ("failed", "Failed")),
        rate_per=60,
    ),
    # Drawn from the selector's whole counts per step, not the "instances" mean (see build_charts).
    ChartDefinition("instances", "Instances", "instances", (("instances", "Instances"),)),
    ChartDefinition("cost", "Cost per hour", "currency", (("cost", "Cost per hour"),), rate_per=3600),
)

# Audit actions as they read on a chart marker or a timeline; unknown actions show their code.
ACTION_LABELS = {
    "workload_class.create": "class created",
    "workload_class.update": "settings changed",
    "workload_class.delete": "class deleted",
    "deployment.record": "deployment",
}


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action.replace("_", " ").replace(".", ": "))


def slo_summary(slo: Slo) -> str:
    """'p95 < 120 s' for threshold SLOs, '99.9 % succeed' for the success ratio."""
    if slo.kind == SloKind.SUCCESS_RATIO:
        return f"{slo.target_percent.normalize():f} % succeed"
    return f"p{slo.percentile.normalize():f} < {seconds_label(slo.threshold_seconds)}"


# The units a duration is written in, on the server and in the browser alike (base.html puts them
# on <html data-duration-units>; static/js/app.js and charts.js read them from there): a duration
# below `limit` seconds (None: any) is written in units of `size` seconds named `name`.
DURATION_UNITS: tuple[tuple[float | None, float, str], ...] = (
    (1, 0.001, "ms"),
    (120, 1, "s"),
    (7200, 60, "min"),
    (86400, 3600, "h"),
    (None, 86400, "d"),
)


def duration_unit(seconds: float) -> tuple[float | None, float, str]:
    return next(unit for unit in DURATION_UNITS if unit[0] is None or abs(seconds) < unit[0])


def seconds_label(seconds: float) -> str:
    _limit, size, name = duration_unit(seconds)
    return f"{seconds / size:.0f} {name}" if name == "ms" else f"{seconds / size:.3g} {name}"


def step_label(seconds: int) -> str:
    """'minute', '2 min', 'hour', '3 h', 'day': the step a chart's points stand for."""
    if seconds % 86400 == 0:
        return "day" if seconds == 86400 else f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return "hour" if seconds == 3600 else f"{seconds // 3600} h"
    return "minute" if seconds == 60 else f"{seconds // 60} min"


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _when(moment: datetime) -> str:
    return f"{moment:%a %d %b %H:%M} UTC"


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
    zoom_group: str = ""

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
            parts.append(f"{s['label']} latest {latest:.4g}" if latest is not None else f"{s['label']} no data")
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
            "zoom_group": self.zoom_group,
            "series": self.series,
            "threshold": self.threshold,
            "markers": self.markers,
            "fetched_at": _iso(self.fetched_at),
            "newest_sample_at": _iso(self.newest_sample_at),
        }


QUICK_ACTION = timedelta(minutes=2)


def chart_markers(
    *,
    actions: list[Action],
    changes: list[AuditEvent],
    start: datetime,
    end: datetime,
    deployments: list[Deployment] = (),
) -> list[dict]:
    """Markers for the time axis, oldest first: each action where it was requested (and where it
    ended, when that is in range and later), each configuration change and each deployment where
    it happened."""
    markers = []
    for deployment in deployments:
        if start <= deployment.deployed_at <= end:
            who = deployment.deployed_by or deployment.recorded_by_label
            markers.append(
                {
                    "t": _epoch(deployment.deployed_at),
                    "label": f"deploy {deployment.label} ({who})",
                    "when": _when(deployment.deployed_at),
                    "at": _iso(deployment.deployed_at),
                    "kind": "deploy",
                }
            )
    for action in actions:
        who = action.requested_by_label
        name = action.get_kind_display().lower()
        state = action.get_state_display().lower()
        # A quick action gets one marker saying how it ended; a long one marks both ends.
        quick = action.finished_at is not None and action.finished_at - action.created_at < QUICK_ACTION
        if start <= action.created_at <= end:
            markers.append(
                {
                    "t": _epoch(action.created_at),
                    "label": f"{name} #{action.pk} ({who}, {state})",
                    "when": _when(action.created_at),
                    "at": _iso(action.created_at),
                    "kind": "action",
                }
            )
        if action.finished_at is not None and not quick and start <= action.finished_at <= end:
            markers.append(
                {
                    "t": _epoch(action.finished_at),
                    "label": f"{name} #{action.pk} {state}",
                    "when": _when(action.finished_at),
                    "at": _iso(action.finished_at),
                    "kind": "action",
                }
            )
    for event in changes:
        if start <= event.occurred_at <= end:
            markers.append(
                {
                    "t": _epoch(event.occurred_at),
                    "label": f"{action_label(event.action)} ({event.actor_label})",
                    "when": _when(event.occurred_at),
                    "at": _iso(event.occurred_at),
                    "kind": "change",
                }
            )
    markers.sort(key=lambda m: (m["t"], m["label"]))
    return markers


def build_charts(
    *, workload_class: WorkloadClass, detail: ClassDetailTelemetry, markers: list[dict], end: datetime | None = None
) -> list[Chart]:
    """One Chart per definition from the class's telemetry: series, SLO threshold lines, markers.
    The time axis runs to `end` (default: the series' end), so markers up to now fit on it, and
    starts where the class's data (or a marker) does when that is later than the range's start:
    a class younger than the range fills the width instead of its last few pixels. Every chart
    of the class shares that axis (the browser syncs their crosshair and zoom).
    Reads only what `detail` and the class (with its cost rates) already hold: no queries."""
    series = detail.series
    slos = {card.slo.kind: card.slo for card in detail.slo_cards}
    currency = workload_class.cost_rates.currency if workload_class.cost_rates else "USD"
    # The last step may be cut short by the range's end: it is a rate over what it covers, so the
    # right edge of a throughput chart does not dip just because the step is still filling.
    series_end = _epoch(series.end)
    covered = [max(60, min(series.step_seconds, series_end - t)) for t in series.timestamps]
    axis_end = max(end or series.end, series.end)
    axis_start = _axis_start(series, markers, axis_end)
    charts = []
    for definition in CHART_DEFINITIONS:
        slo = slos.get(definition.slo_kind) if definition.slo_kind else None
        threshold = None
        if slo is not None and slo.threshold_seconds is not None:
            threshold = {"value": slo.threshold_seconds, "label": f"SLO {slo_summary(slo)}"}
        lines = []
        for name, label in definition.series:
            values = series.values.get(name, [])
            if name == "instances":
                values = series.instance_counts
                how = "most running at once" if series.instance_counts_basis == "peak" else "mean, rounded"
                label = f"{label} ({how}, per {step_label(series.step_seconds)})"
            if definition.rate_per:
                per = definition.rate_per
                values = [None if v is None else v * per / span for v, span in zip(values, covered, strict=True)]
            lines.append({"label": label, "values": list(values)})
        charts.append(
            Chart(
                key=definition.key,
                title=definition.title,
                unit=currency if definition.unit == "currency" else definition.unit,
                start=axis_start,
                end=axis_end,
                x=list(series.timestamps),
                series=lines,
                threshold=threshold,
                markers=markers,
                fetched_at=series.fetched_at,
                newest_sample_at=series.newest_sample_at,
                zoom_group=f"class-{workload_class.slug}",
            )
        )
    return charts


# The shortest axis a young class gets, so a handful of points do not stretch across the width.
MIN_AXIS_SPAN = timedelta(minutes=10)


def _axis_start(series, markers: list[dict], end: datetime) -> datetime:
    """The range's start, or the first step with data (or the first marker) when later."""
    with_data = [
        t
        for i, t in enumerate(series.timestamps)
        if any(values[i] is not None for values in series.values.values()) or series.instance_counts[i] is not None
    ]
    first = min([*with_data[:1], *(m["t"] for m in markers[:1])], default=None)
    if first is None:
        return series.start
    earliest = datetime.fromtimestamp(first, tz=series.start.tzinfo)
    return max(series.start, min(earliest, end - MIN_AXIS_SPAN))
