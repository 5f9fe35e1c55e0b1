"""Read-side telemetry queries for dashboards, the API and /metrics.

Everything here reads what the ticks wrote (rollups, each class's live ClassTelemetry row, SLO
status snapshots, alerts) with a bounded number of rows: the cost grows with the classes and
points shown, never with history or traffic.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from workloads.domain.dead_letters import RetentionRisk, retention_risk
from workloads.domain.windows import floor_minute
from workloads.models import (
    ClassTelemetry,
    PollRun,
    Slo,
    SloAlert,
    SloKind,
    SloStatus,
    WorkloadClass,
)
from workloads.providers.base import RuntimeMetric
from workloads.selectors.cost import class_cost, class_usage
from workloads.selectors.rollups import POLLED_METRICS
from workloads.selectors.series import CHART_RANGES, SeriesSet, class_series
from workloads.selectors.slos import AT_RISK_BUDGET_PERCENT, SloCard, alert_queryset, slo_cards


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
