"""Read-side telemetry queries for dashboards, the API and /metrics.

Everything here reads what the ticks wrote (rollups, each class's live ClassTelemetry row, SLO
status snapshots, alerts) with a bounded number of rows: the cost grows with the classes and
points shown, never with history or traffic.
"""

from __future__ import annotations

import enum
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from workloads.domain import histogram
from workloads.domain.dead_letters import RetentionRisk, retention_risk
from workloads.domain.windows import floor_minute
from workloads.models import (
    ClassTelemetry,
    MetricRollup,
    PollRun,
    Resolution,
    Slo,
    SloAlert,
    SloKind,
    SloStatus,
    WorkloadClass,
)
from workloads.models.telemetry import RESOLUTION_SECONDS
from workloads.notifications.runbooks import runbook_url
from workloads.providers.base import RuntimeMetric
from workloads.selectors.cost import class_cost, class_usage
from workloads.selectors.rollups import GAUGE_COLUMNS, POLLED_METRICS, USAGE_COLUMNS, minutes_kept_since

# --- Series -----------------------------------------------------------------------------------------
# name -> (unit, how steps combine)
SERIES: dict[str, tuple[str, str]] = {
    "oldest_unacked_age": ("seconds", "max"),
    "backlog": ("messages", "max"),
    "dead_letter_backlog": ("messages", "max"),
    "instances": ("instances", "mean"),
    "completed": ("jobs", "sum"),
    "failed": ("jobs", "sum"),
    "records": ("records", "sum"),
    "tokens": ("tokens", "sum"),
    "latency_p50": ("seconds", "histogram"),
    "latency_p95": ("seconds", "histogram"),
    "latency_p99": ("seconds", "histogram"),
    "cost": ("currency", "sum"),
}
# The rollup column a gauge or usage series reads: its own name (queue age: in seconds).
_ROW_COLUMN = {
    name: column
    for column in (*GAUGE_COLUMNS, *USAGE_COLUMNS)
    for name in (column, column.removesuffix("_seconds"))
    if name in SERIES and SERIES[name][1] != "histogram"
}
_PERCENTILES = {"latency_p50": 50.0, "latency_p95": 95.0, "latency_p99": 99.0}
_SERIES_FIELDS = (
    "bucket_start",
    *GAUGE_COLUMNS,
    *USAGE_COLUMNS,
    "latency_buckets",
    "fetched_at",
    "newest_sample_age_seconds",
)
# Steps a chart or API caller may get: the smallest one that keeps the points under the limit.
NICE_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
MAX_POINTS = 1440
# Beyond this range minute rows would be too many to read for one chart: use hourly rows.
MAX_MINUTE_RANGE = timedelta(hours=48)

CHART_RANGES: dict[str, tuple[timedelta, int]] = {
    "1h": (timedelta(hours=1), 60),
    "6h": (timedelta(hours=6), 120),
    "24h": (timedelta(hours=24), 300),
    "7d": (timedelta(days=7), 3600),
    "30d": (timedelta(days=30), 10800),
}


def choose_step(start: datetime, end: datetime, requested: int | None = None, *, max_points: int = MAX_POINTS) -> int:
    needed = max(requested or 60, math.ceil((end - start).total_seconds() / max_points))
    return next((step for step in NICE_STEPS if step >= needed), NICE_STEPS[-1])


def choose_resolution(start: datetime, end: datetime, step: int, *, now: datetime) -> str:
    if step >= 3600 or end - start > MAX_MINUTE_RANGE or start < minutes_kept_since(now):
        return Resolution.HOUR
    return Resolution.MINUTE


@dataclass
class SeriesSet:
    """Aligned series for one class: `timestamps[i]` is the start of step i (epoch seconds) and
    every list in `values` has one entry per step (None where there was no data)."""

    start: datetime
    end: datetime
    step_seconds: int
    resolution: str
    timestamps: list[int]
    values: dict[str, list[float | None]]
    units: dict[str, str]
    fetched_at: datetime | None = None
    newest_sample_at: datetime | None = None
    # Whole instances per step for charts (instance_counts_basis says how): "instances" is a
    # time-weighted mean, and "0.8 instances" is no count anyone ran.
    instance_counts: list[int | None] = field(default_factory=list)
    instance_counts_basis: str = "peak"

    def __post_init__(self):
        # A SeriesSet built from values alone (tests, other callers) counts from its means.
        if not self.instance_counts:
            means = self.values.get("instances") or [None] * len(self.timestamps)
            rows = [[] if v is None else [{"instances": v}] for v in means]
            self.instance_counts = [_instance_count(r, self.resolution) for r in rows]
            self.instance_counts_basis = "peak" if self.resolution == Resolution.MINUTE else "mean"

    def points(self, name: str) -> list[tuple[datetime, float]]:
        """(step start, value) for the steps that have data: gaps are absent, never zero."""
        return [
            (datetime.fromtimestamp(t, tz=UTC), v)
            for t, v in zip(self.timestamps, self.values[name], strict=True)
            if v is not None
        ]


def _cost_weights(wc: WorkloadClass) -> tuple[float, float, float]:
    rates = wc.cost_rates
    if rates is None:
        return 0.0, 0.0, 0.0
    per_instance_second = float(
        wc.vcpu_per_instance * rates.vcpu_second + wc.memory_gib_per_instance * rates.gib_second
    )
    return per_instance_second, float(rates.per_record), float(rates.per_1k_tokens) / 1000


def class_series(
    *,
    workload_class: WorkloadClass,
    start: datetime,
    end: datetime,
    now: datetime,
    names: tuple[str, ...] = tuple(SERIES),
    step_seconds: int | None = None,
    max_points: int = MAX_POINTS,
) -> SeriesSet:
    """Series for one class over [start, end), combining rollup rows into steps chosen so no more
    than `max_points` come back; hourly rows are read for long or old ranges."""
    step = choose_step(start, end, step_seconds, max_points=max_points)
    resolution = choose_resolution(start, end, step, now=now)
    step = max(step, RESOLUTION_SECONDS[resolution])
    first = int(start.timestamp()) // step * step
    timestamps = list(range(first, int(end.timestamp()), step))
    index = {t: i for i, t in enumerate(timestamps)}
    rows = (
        MetricRollup.objects.filter(
            workload_class=workload_class,
            resolution=resolution,
            bucket_start__gte=datetime.fromtimestamp(first, tz=start.tzinfo),
            bucket_start__lt=end,
        )
        .order_by("bucket_start")
        .values(*_SERIES_FIELDS)
    )
    per_instance_second, per_record, per_token = _cost_weights(workload_class)
    buckets: list[list[dict]] = [[] for _ in timestamps]
    fetched_at = newest_sample_at = None
    for row in rows:
        i = index.get(int(row["bucket_start"].timestamp()) // step * step)
        if i is None:
            continue
        buckets[i].append(row)
        if fetched_at is None or row["fetched_at"] > fetched_at:
            fetched_at = row["fetched_at"]
        if row["newest_sample_age_seconds"] is not None:
            sample_at = row["fetched_at"] - timedelta(seconds=row["newest_sample_age_seconds"])
            newest_sample_at = max(sample_at, newest_sample_at or sample_at)

    values: dict[str, list[float | None]] = {name: [None] * len(timestamps) for name in names}
    instance_counts: list[int | None] = [None] * len(timestamps)
    for i, step_rows in enumerate(buckets):
        if not step_rows:
            continue
        instance_counts[i] = _instance_count(step_rows, resolution)
        merged = None
        for name in names:
            how = SERIES[name][1]
            if how == "histogram":
                if merged is None:
                    merged = histogram.merge(r["latency_buckets"] for r in step_rows)
                values[name][i] = histogram.percentile(merged, _PERCENTILES[name])
            elif name == "cost":
                values[name][i] = sum(
                    r["instance_seconds"] * per_instance_second + r["records"] * per_record + r["tokens"] * per_token
                    for r in step_rows
                )
            else:
                samples = [r[_ROW_COLUMN[name]] for r in step_rows if r[_ROW_COLUMN[name]] is not None]
                if not samples:
                    continue
                if how == "max":
                    values[name][i] = max(samples)
                elif how == "mean":
                    values[name][i] = sum(samples) / len(samples)
                else:
                    values[name][i] = sum(samples)
    return SeriesSet(
        start=start,
        end=end,
        step_seconds=step,
        resolution=resolution,
        timestamps=timestamps,
        values=values,
        units={name: SERIES[name][0] for name in names},
        fetched_at=fetched_at,
        newest_sample_at=newest_sample_at,
        instance_counts=instance_counts,
        instance_counts_basis="peak" if resolution == Resolution.MINUTE else "mean",
    )


def _instance_count(rows: list[dict], resolution: str) -> int | None:
    """A step's instances as a whole number. A minute row holds the minute's time-weighted mean of
    a whole count, so some moment of the minute ran at least ceil(mean) instances (exactly the
    peak when the count moved by one within the minute): the step's peak is the largest of those.
    An hourly row's mean says little about its peak, so hourly steps show the mean, rounded."""
    samples = [r["instances"] for r in rows if r["instances"] is not None]
    if not samples:
        return None
    if resolution == Resolution.MINUTE:
        return max(peak_instances(s) for s in samples)
    return round(sum(samples) / len(samples))


def peak_instances(minute_mean: float) -> int:
    """The most instances running at once in a minute whose time-weighted mean was `minute_mean`
    (exact when the count moved by at most one within it; never fewer than really ran)."""
    # The tolerance keeps a float sum such as 2.0000000001 from reading as 3.
    return max(0, math.ceil(minute_mean - 1e-6))


# --- SLO cards and alerts -------------------------------------------------------------------------
AT_RISK_BUDGET_PERCENT = 25.0


def status_of(slo: Slo) -> SloStatus | None:
    try:
        return slo.status
    except SloStatus.DoesNotExist:
        return None


@dataclass
class SloCard:
    """What every screen and endpoint shows of one SLO; built by `slo_cards` only."""

    slo: Slo
    status: SloStatus | None  # None until the evaluation tick has run once
    active_alerts: int = 0  # burn-rate alerts open now

    @property
    def attainment_percent(self) -> float | None:
        if self.status is None or self.status.attainment is None:
            return None
        return self.status.attainment * 100

    @property
    def attempt_failure_percent(self) -> float | None:
        """Failed attempts per 100 attempts over the window (its own figure, beside the SLO)."""
        if self.status is None or self.status.attempt_failure_ratio is None:
            return None
        return self.status.attempt_failure_ratio * 100

    @property
    def budget_remaining_percent(self) -> float | None:
        return None if self.status is None else self.status.budget_remaining_percent

    @property
    def burn_rates(self) -> dict[str, float]:
        if self.status is None:
            return {}
        return {label: w["burn_rate"] for label, w in self.status.windows.items()}

    @property
    def unit(self) -> str:
        return "minutes" if self.slo.kind == SloKind.QUEUE_AGE else "events"

    @property
    def runbook_url(self) -> str:
        return runbook_url(self.slo)


def slo_queryset() -> QuerySet[Slo]:
    return Slo.objects.select_related("workload_class", "status").order_by("workload_class__slug", "kind")


def active_alert_counts(*, slo_ids: list[int]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for slo_id in SloAlert.objects.filter(slo_id__in=slo_ids, resolved_at__isnull=True).values_list(
        "slo_id", flat=True
    ):
        counts[slo_id] += 1
    return counts


def slo_cards(slos, *, open_alerts: list[SloAlert] | None = None) -> list[SloCard]:
    """The cards of these SLOs (with `status` selected): the last evaluation and the alerts open
    now. The one place an SLO's card is assembled, so the SLO list, a class's error budget, its
    page and the fleet answer the same (one query for the alerts, whatever the number of SLOs;
    none when the caller already loaded the open alerts of these SLOs, as `open_alerts`)."""
    slos = list(slos)
    if open_alerts is None:
        active = active_alert_counts(slo_ids=[slo.pk for slo in slos])
    else:
        active = Counter(alert.slo_id for alert in open_alerts if alert.resolved_at is None)
    return [SloCard(slo=slo, status=status_of(slo), active_alerts=active.get(slo.pk, 0)) for slo in slos]


def alert_queryset(*, state: str = "all") -> QuerySet[SloAlert]:
    alerts = SloAlert.objects.select_related("slo__workload_class", "incident")
    if state == "active":
        alerts = alerts.filter(resolved_at__isnull=True)
    elif state == "resolved":
        alerts = alerts.filter(resolved_at__isnull=False)
    return alerts.order_by("-opened_at", "-id")


# --- Fleet overview ---------------------------------------------------------------------------------
class ClassStatus(enum.StrEnum):
    """A class's status colour on the fleet overview."""

    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    STALE = "stale"  # metrics stopped arriving: never shown as healthy, whatever the last values said
    NO_DATA = "no_data"  # nothing polled yet


STATUSES = tuple(status.value for status in ClassStatus)


@dataclass
class ClassTelemetryRow:
    """What the fleet overview shows for one class. Values are None when there is no data."""

    workload_class: WorkloadClass
    status: ClassStatus
    status_reason: str
    queue_age_seconds: float | None = None
    queue_age_threshold_seconds: float | None = None
    backlog: float | None = None
    dead_letter_backlog: float | None = None
    dead_letter_oldest_age_seconds: float | None = None
    # Set when the oldest un-mirrored dead letter nears the dead-letter subscription's retention.
    dead_letter_risk: RetentionRisk | None = None
    instances: float | None = None
    latency_p95_seconds: float | None = None
    latency_threshold_seconds: float | None = None
    error_budget_remaining_percent: float | None = None
    worst_slo_kind: str | None = None
    slo_cards: list[SloCard] = field(default_factory=list)
    active_alerts: list[SloAlert] = field(default_factory=list)
    cost_today: Decimal | None = None
    currency: str = ""
    fetched_at: datetime | None = None
    newest_sample_at: datetime | None = None
    metric_age_seconds: float | None = None


def _class_status(
    *, newest_sample_at: datetime | None, cards: list[SloCard], alerts: list[SloAlert], now: datetime
) -> tuple[ClassStatus, str]:
    if newest_sample_at is None:
        return ClassStatus.NO_DATA, "No metrics received yet."
    age = (now - newest_sample_at).total_seconds()
    if age > settings.TELEMETRY_STALE_AFTER_SECONDS:
        return ClassStatus.STALE, f"No new metrics for {int(age // 60)} min: the values shown are old."
    pages = [a for a in alerts if a.severity == "page"]
    breached = [c for c in cards if c.status is not None and not c.status.met]
    if pages:
        return ClassStatus.BREACHED, f"Paging: {pages[0].slo.get_kind_display()} is burning its budget fast."
    if breached:
        return (
            ClassStatus.BREACHED,
            f"{breached[0].slo.get_kind_display()}: attainment below target over the SLO window.",
        )
    if alerts:
        return ClassStatus.AT_RISK, f"Ticket: {alerts[0].slo.get_kind_display()} is burning its budget."
    low = [
        c
        for c in cards
        if c.budget_remaining_percent is not None and c.budget_remaining_percent < AT_RISK_BUDGET_PERCENT
    ]
    if low:
        return (
            ClassStatus.AT_RISK,
            f"{low[0].slo.get_kind_display()} has {low[0].budget_remaining_percent:.0f}% budget left.",
        )
    return ClassStatus.OK, "Within every SLO."


def _telemetry_of(workload_class: WorkloadClass) -> ClassTelemetry | None:
    try:
        return workload_class.telemetry
    except ClassTelemetry.DoesNotExist:
        return None


def fleet_overview(*, now: datetime, classes: QuerySet[WorkloadClass] | None = None) -> list[ClassTelemetryRow]:
    """One row per class (in the queryset's order) with its live telemetry, in four queries that
    read one row per class, SLO and open alert, plus today's hourly rollups for the cost column:
    the cost does not grow with history or traffic."""
    classes = (classes if classes is not None else WorkloadClass.objects.order_by("slug")).select_related(
        "cost_rates", "telemetry"
    )
    classes = list(
        classes.prefetch_related(Prefetch("slos", queryset=Slo.objects.select_related("status").order_by("kind")))
    )
    if not classes:
        return []
    class_ids = [wc.pk for wc in classes]
    alerts: dict[int, list[SloAlert]] = defaultdict(list)
    for alert in SloAlert.objects.filter(resolved_at__isnull=True, slo__workload_class_id__in=class_ids).select_related(
        "slo"
    ):
        alerts[alert.slo.workload_class_id].append(alert)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    usage = class_usage(start=day_start, end=now, class_ids=class_ids, now=now)

    cards_of: dict[int, list[SloCard]] = defaultdict(list)
    open_alerts = [alert for class_alerts in alerts.values() for alert in class_alerts]
    for card in slo_cards((slo for wc in classes for slo in wc.slos.all()), open_alerts=open_alerts):
        cards_of[card.slo.workload_class_id].append(card)
    rows = []
    for wc in classes:
        cards = cards_of[wc.pk]
        live = _telemetry_of(wc)
        newest = live.newest_sample_at if live else None
        class_alerts = sorted(alerts.get(wc.pk, []), key=lambda a: (a.severity != "page", a.opened_at))
        status, reason = _class_status(newest_sample_at=newest, cards=cards, alerts=class_alerts, now=now)
        thresholds = {card.slo.kind: card.slo.threshold_seconds for card in cards}
        budgets = [c for c in cards if c.budget_remaining_percent is not None]
        worst = min(budgets, key=lambda c: c.budget_remaining_percent, default=None)
        cost = class_cost(wc, usage.get(wc.pk, {}))
        rows.append(
            ClassTelemetryRow(
                workload_class=wc,
                status=status,
                status_reason=reason,
                queue_age_seconds=live.oldest_unacked_age_seconds if live else None,
                queue_age_threshold_seconds=thresholds.get(SloKind.QUEUE_AGE),
                backlog=live.backlog if live else None,
                dead_letter_backlog=live.dead_letter_backlog if live else None,
                dead_letter_oldest_age_seconds=live.dead_letter_oldest_age_seconds if live else None,
                dead_letter_risk=retention_risk(
                    live.dead_letter_oldest_age_seconds if live else None,
                    ticket_percent=settings.DEAD_LETTER_AGE_TICKET_PERCENT,
                    page_percent=settings.DEAD_LETTER_AGE_PAGE_PERCENT,
                ),
                instances=live.instances if live else None,
                latency_p95_seconds=live.latency_p95_seconds if live else None,
                latency_threshold_seconds=thresholds.get(SloKind.COMPLETION_LATENCY),
                error_budget_remaining_percent=worst.budget_remaining_percent if worst else None,
                worst_slo_kind=worst.slo.kind if worst else None,
                slo_cards=cards,
                active_alerts=class_alerts,
                cost_today=cost.total_cost if cost.has_rates else None,
                currency=cost.currency,
                fetched_at=live.fetched_at if live else None,
                newest_sample_at=newest,
                metric_age_seconds=(now - newest).total_seconds() if newest else None,
            )
        )
    return rows


# --- Class detail -----------------------------------------------------------------------------------
@dataclass
class ClassDetailTelemetry:
    range_key: str
    series: SeriesSet
    thresholds: dict[str, float | None]  # series name -> SLO threshold line
    slo_cards: list[SloCard]
    active_alerts: list[SloAlert]
    recent_alerts: list[SloAlert]
    metric_age_seconds: float | None

    def chart_data(self, names: tuple[str, ...]) -> dict:
        """JSON-ready columnar data for one chart (uPlot's shape: x values, then one list per series)."""
        return {
            "x": self.series.timestamps,
            "series": {name: self.series.values[name] for name in names},
            "units": {name: self.series.units[name] for name in names},
            "step_seconds": self.series.step_seconds,
            "fetched_at": self.series.fetched_at.isoformat() if self.series.fetched_at else None,
            "newest_sample_at": self.series.newest_sample_at.isoformat() if self.series.newest_sample_at else None,
        }


def class_telemetry(*, workload_class: WorkloadClass, range_key: str, now: datetime) -> ClassDetailTelemetry:
    """Charts, SLO cards and alerts for one class over one of CHART_RANGES (bounded points)."""
    if range_key not in CHART_RANGES:
        raise ValueError(f"range must be one of {', '.join(CHART_RANGES)}.")
    length, step = CHART_RANGES[range_key]
    end = floor_minute(now)
    series = class_series(workload_class=workload_class, start=end - length, end=end, now=now, step_seconds=step)
    slos = list(
        Slo.objects.filter(workload_class=workload_class).select_related("status", "workload_class").order_by("kind")
    )
    thresholds = {
        "oldest_unacked_age": next((s.threshold_seconds for s in slos if s.kind == SloKind.QUEUE_AGE), None),
        "latency_p95": next((s.threshold_seconds for s in slos if s.kind == SloKind.COMPLETION_LATENCY), None),
    }
    alerts = list(alert_queryset().filter(slo__workload_class=workload_class)[:20])
    live = _telemetry_of(workload_class)
    newest = live.newest_sample_at if live else None
    return ClassDetailTelemetry(
        range_key=range_key,
        series=series,
        thresholds=thresholds,
        slo_cards=slo_cards(slos),
        active_alerts=[a for a in alerts if a.resolved_at is None],
        recent_alerts=alerts,
        metric_age_seconds=(now - newest).total_seconds() if newest else None,
    )


# --- Worker error budget ------------------------------------------------------------------------------
@dataclass
class BudgetConsumer:
    source: str  # "failed_completions", "timeouts", "dead_letter_signature"
    label: str
    events: float


@dataclass
class WorkerErrorBudget:
    card: SloCard | None  # of the success-ratio SLO; None when the class has none
    consumers: list[BudgetConsumer]

    @property
    def slo(self) -> Slo | None:
        return self.card.slo if self.card else None

    @property
    def status(self) -> SloStatus | None:
        return self.card.status if self.card else None


def dead_letter_error_breakdown(
    *, workload_class: WorkloadClass, start: datetime, end: datetime
) -> list[BudgetConsumer]:
    """Error signatures of the class's dead letters (last seen) in [start, end), largest first,
    read from the dead-letter mirror."""
    from workloads.selectors.deadletters import dead_letter_counts_by_signature

    return [
        BudgetConsumer(
            source="dead_letter_signature",
            label=f"{group['error_type'] or 'Dead letters'} ({group['error_signature']})",
            events=float(group["n"]),
        )
        for group in dead_letter_counts_by_signature(workload_class=workload_class, start=start, end=end)
    ]


def worker_error_budget(*, workload_class: WorkloadClass, now: datetime) -> WorkerErrorBudget:
    """The failure budget the class's success-ratio SLO allows, and what consumed it."""
    slo = Slo.objects.filter(workload_class=workload_class, kind=SloKind.SUCCESS_RATIO).select_related("status").first()
    if slo is None:
        return WorkerErrorBudget(card=None, consumers=[])
    [card] = slo_cards([slo])
    status = card.status
    start = floor_minute(now) - timedelta(days=slo.window_days)
    consumers = dead_letter_error_breakdown(workload_class=workload_class, start=start, end=now)
    if status is not None and status.budget_consumed > 0:
        attributed = sum(c.events for c in consumers)
        rest = status.budget_consumed - attributed
        if rest > 0:
            # Dead-lettered work the breakdown by signature did not name (a row replayed since).
            consumers.append(BudgetConsumer(source="failed_completions", label="Other dead-lettered work", events=rest))
    return WorkerErrorBudget(card=card, consumers=consumers)


# --- Poll health ----------------------------------------------------------------------------------------
def latest_poll_runs() -> dict[str, PollRun | None]:
    """The most recent run of each polled metric (one query per metric, on an index), and of the
    observed runtimes' own metrics where they were ever read (none without observed classes)."""
    latest = {
        metric.value: PollRun.objects.filter(metric=metric.value).order_by("-started_at").first()
        for metric in (*POLLED_METRICS, *RuntimeMetric)
    }
    return {
        metric: run
        for metric, run in latest.items()
        if run is not None or metric not in {m.value for m in RuntimeMetric}
    }
