"""Telemetry: poll the Metrics port into rollups, fold old minutes into hours, evaluate SLOs and
burn-rate alerts, attribute cost.

Every function takes the time as an explicit `now` and is safe to run twice or late: rollups are
upserted from the provider's current values (a re-poll replaces, never adds), hourly rows are
recomputed from their minutes, and alert state only moves when the numbers say so.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import accumulate

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from workloads.models import (
    MetricFreshness,
    MetricRollup,
    PollRun,
    Resolution,
    Slo,
    SloAlert,
    SloKind,
    SloStatus,
    WorkloadClass,
)
from workloads.providers import get_providers
from workloads.providers.base import (
    GAUGE_METRICS,
    LATENCY_BUCKET_BOUNDS,
    Distribution,
    MetricKind,
    Point,
    ProviderError,
)
from workloads.providers.specs import metric_target
from workloads.telemetry import histogram
from workloads.telemetry import slo as slo_math
from workloads.telemetry.windows import Span, floor_hour, floor_minute, window_spans

logger = logging.getLogger(__name__)

STEP_SECONDS = 60
_STEP = timedelta(seconds=STEP_SECONDS)
_HOUR = timedelta(hours=1)

# Which rollup columns each metric sets. A poll updates only the columns of metrics that answered,
# so one failing metric never blanks another's values.
METRIC_FIELDS: dict[MetricKind, tuple[str, ...]] = {
    MetricKind.OLDEST_UNACKED_AGE: ("oldest_unacked_age_seconds",),
    MetricKind.UNDELIVERED_MESSAGES: ("backlog",),
    MetricKind.DEAD_LETTER_BACKLOG: ("dead_letter_backlog",),
    MetricKind.INSTANCE_COUNT: ("instances", "instance_seconds"),
    MetricKind.COMPLETION_LATENCY: ("latency_buckets", "latency_count", "latency_sum"),
    MetricKind.COMPLETED: ("completed",),
    MetricKind.FAILED: ("failed",),
    MetricKind.RECORDS: ("records",),
    MetricKind.TOKENS: ("tokens",),
}
POLLED_METRICS: tuple[MetricKind, ...] = tuple(METRIC_FIELDS)
_ROLLUP_UNIQUE = ["workload_class", "resolution", "bucket_start"]


def minutes_kept_since(now: datetime) -> datetime:
    """Minute rollups at or after this moment are guaranteed to exist (downsampling folds and
    deletes whole hours before it)."""
    return floor_hour(now - timedelta(days=settings.TELEMETRY_MINUTE_RETENTION_DAYS))


# --- Polling -------------------------------------------------------------------------------------------
@dataclass
class PollSummary:
    window_start: datetime
    window_end: datetime
    runs: list[PollRun] = field(default_factory=list)
    rollups_written: int = 0

    @property
    def failed(self) -> list[PollRun]:
        return [run for run in self.runs if not run.ok]


def _point_fields(metric: MetricKind, value) -> dict:
    if metric is MetricKind.COMPLETION_LATENCY:
        if not isinstance(value, Distribution):
            raise ValueError(f"{metric} points must be Distributions, got {type(value).__name__}.")
        if tuple(value.bounds) != LATENCY_BUCKET_BOUNDS or len(value.bucket_counts) != histogram.BUCKETS:
            raise ValueError(f"{metric} points must use LATENCY_BUCKET_BOUNDS ({histogram.BUCKETS} buckets).")
        return {
            "latency_buckets": [int(c) for c in value.bucket_counts],
            "latency_count": int(value.count),
            "latency_sum": float(value.sum),
        }
    number = float(value)
    if metric is MetricKind.INSTANCE_COUNT:
        return {"instances": number, "instance_seconds": number * STEP_SECONDS}
    (column,) = METRIC_FIELDS[metric]
    return {column: number if metric in GAUGE_METRICS else round(number)}


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, ProviderError):
        kind = "permanent" if exc.permanent else "transient"
        code = f" {exc.code}" if exc.code else ""
        return f"{kind}{code}: {exc.message}"[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]


def metrics_poll(*, now: datetime, window_minutes: int | None = None) -> PollSummary:
    """Ask the Metrics port for the last `window_minutes` of every metric, for all classes at once
    (one call per metric), and upsert per-class, per-minute rollups; then refresh the hourly rows
    of the hours touched. A failing metric is recorded and skipped; the others still land."""
    window_minutes = window_minutes or settings.TELEMETRY_POLL_WINDOW_MINUTES
    # Steps are aligned to whole minutes so every poll cuts the same buckets: a misaligned end
    # would spread one minute's counts over two buckets and a re-poll could count them twice.
    end = floor_minute(now)
    start = end - timedelta(minutes=window_minutes)
    summary = PollSummary(window_start=start, window_end=end)
    classes = list(
        WorkloadClass.objects.order_by("pk").only(
            "pk", "slug", "subscription", "dead_letter_subscription", "worker_pool"
        )
    )
    if not classes:
        return summary
    targets = [metric_target(wc) for wc in classes]
    class_ids = {wc.slug: wc.pk for wc in classes}
    metrics_port = get_providers().metrics

    cells: dict[tuple[int, datetime], dict] = defaultdict(dict)
    newest: dict[int, datetime] = {}
    clock = time.monotonic()
    for metric in POLLED_METRICS:
        run = PollRun(
            metric=metric.value,
            started_at=now + timedelta(seconds=time.monotonic() - clock),
            window_start=start,
            window_end=end,
            classes=len(targets),
        )
        try:
            series = metrics_port.series(metric, targets, start=start, end=end, step_seconds=STEP_SECONDS)
            received, latest = _cells_from_series(metric, series, class_ids, start=start, end=end)
        except Exception as exc:  # any failure of one metric must leave the other metrics' polls running
            logger.warning("metric poll failed for %s: %s", metric.value, exc, exc_info=True)
            run.ok, run.error = False, _describe_error(exc)
        else:
            for key, values in received.items():
                cells[key].update(values)
            for class_id, moment in latest.items():
                newest[class_id] = max(moment, newest.get(class_id, moment))
            run.ok, run.points = True, sum(1 for _ in received)
        run.finished_at = now + timedelta(seconds=time.monotonic() - clock)
        summary.runs.append(run)

    with transaction.atomic():
        PollRun.objects.bulk_create(summary.runs)
        summary.rollups_written = _minute_rollups_upsert(cells, newest, fetched_at=now)
        _freshness_record(newest, fetched_at=now)
        touched = {class_id for class_id, _bucket in cells}
        if touched:
            hours = [bucket for _class_id, bucket in cells]
            _hourly_rollups_refresh(class_ids=touched, start=floor_hour(min(hours)), end=floor_hour(max(hours)) + _HOUR)
    return summary


def _cells_from_series(
    metric: MetricKind, series: dict[str, list[Point]], class_ids: dict[str, int], *, start: datetime, end: datetime
) -> tuple[dict[tuple[int, datetime], dict], dict[int, datetime]]:
    received: dict[tuple[int, datetime], dict] = {}
    latest: dict[int, datetime] = {}
    for slug, points in series.items():
        class_id = class_ids.get(slug)
        if class_id is None:
            continue  # a class deleted while the call was in flight
        for point in points:
            bucket = floor_minute(point.end - _STEP)
            # One step either side of the window is accepted (providers differ on whether the
            # edge step is included); anything else is not what was asked for.
            if not (start - _STEP <= bucket < end):
                continue
            received[(class_id, bucket)] = _point_fields(metric, point.value)
            latest[class_id] = max(point.end, latest.get(class_id, point.end))
    return received, latest


def _minute_rollups_upsert(
    cells: dict[tuple[int, datetime], dict], newest: dict[int, datetime], *, fetched_at: datetime
) -> int:
    # Rows are grouped by the columns they carry, because one upsert statement updates the same
    # columns for every row: a minute with only a backlog sample must not reset its counters.
    groups: dict[frozenset[str], list[MetricRollup]] = defaultdict(list)
    for (class_id, bucket), values in cells.items():
        groups[frozenset(values)].append(
            MetricRollup(
                workload_class_id=class_id,
                resolution=Resolution.MINUTE,
                bucket_start=bucket,
                fetched_at=fetched_at,
                newest_sample_age_seconds=max(0.0, (fetched_at - newest[class_id]).total_seconds()),
                **values,
            )
        )
    for columns, rows in groups.items():
        MetricRollup.objects.bulk_create(
            rows,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=_ROLLUP_UNIQUE,
            update_fields=[*sorted(columns), "fetched_at", "newest_sample_age_seconds"],
        )
    return len(cells)


def _freshness_record(newest: dict[int, datetime], *, fetched_at: datetime) -> None:
    if not newest:
        return
    previous = dict(
        MetricFreshness.objects.filter(workload_class_id__in=newest).values_list(
            "workload_class_id", "newest_sample_at"
        )
    )
    rows = [
        MetricFreshness(
            workload_class_id=class_id,
            fetched_at=fetched_at,
            newest_sample_at=max(moment, previous.get(class_id) or moment),
        )
        for class_id, moment in newest.items()
    ]
    MetricFreshness.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["workload_class"], update_fields=["fetched_at", "newest_sample_at"]
    )


# --- Hourly rollups and downsampling ----------------------------------------------------------------------
_FOLD_FIELDS = (
    "workload_class_id",
    "bucket_start",
    "oldest_unacked_age_seconds",
    "backlog",
    "dead_letter_backlog",
    "instances",
    "instance_seconds",
    "completed",
    "failed",
    "records",
    "tokens",
    "latency_buckets",
    "latency_count",
    "latency_sum",
    "fetched_at",
    "newest_sample_age_seconds",
)
_HOURLY_UPDATE_FIELDS = [name for name in _FOLD_FIELDS if name not in ("workload_class_id", "bucket_start")] + [
    "queue_ages"
]


def fold_minutes(minutes: Iterable[dict]) -> dict:
    """One hour's values from its minute rows: maxima for ages and backlogs, the mean of instance
    samples, sums for counters, instance-seconds and histograms, and the histogram of the
    minutes' queue ages, sorted (for queue-age SLOs)."""
    ages, backlogs, dead_letters, instances = [], [], [], []
    sums = {"instance_seconds": 0.0, "completed": 0, "failed": 0, "records": 0, "tokens": 0}
    latency = histogram.empty()
    latency_count, latency_sum = 0, 0.0
    fetched_at, newest_age = None, None
    for row in minutes:
        for values, key in (
            (ages, "oldest_unacked_age_seconds"),
            (backlogs, "backlog"),
            (dead_letters, "dead_letter_backlog"),
            (instances, "instances"),
        ):
            if row[key] is not None:
                values.append(row[key])
        for key in sums:
            sums[key] += row[key]
        histogram.add_into(latency, row["latency_buckets"])
        latency_count += row["latency_count"]
        latency_sum += row["latency_sum"]
        if fetched_at is None or row["fetched_at"] > fetched_at:
            fetched_at = row["fetched_at"]
        if row["newest_sample_age_seconds"] is not None:
            newest_age = min(row["newest_sample_age_seconds"], newest_age if newest_age is not None else float("inf"))
    return {
        "oldest_unacked_age_seconds": max(ages) if ages else None,
        "backlog": max(backlogs) if backlogs else None,
        "dead_letter_backlog": max(dead_letters) if dead_letters else None,
        "instances": sum(instances) / len(instances) if instances else None,
        **sums,
        "latency_buckets": latency if latency_count or any(latency) else [],
        "latency_count": latency_count,
        "latency_sum": latency_sum,
        "queue_ages": sorted(ages),
        "fetched_at": fetched_at,
        "newest_sample_age_seconds": newest_age,
    }


def _hourly_rollups_refresh(*, start: datetime, end: datetime, class_ids: Iterable[int] | None = None) -> int:
    """Recompute the hourly rows of [start, end) (whole hours) from their minutes and upsert them."""
    minutes = MetricRollup.objects.filter(resolution=Resolution.MINUTE, bucket_start__gte=start, bucket_start__lt=end)
    if class_ids is not None:
        minutes = minutes.filter(workload_class_id__in=list(class_ids))
    by_hour: dict[tuple[int, datetime], list[dict]] = defaultdict(list)
    for row in minutes.values(*_FOLD_FIELDS).iterator(chunk_size=2000):
        by_hour[(row["workload_class_id"], floor_hour(row["bucket_start"]))].append(row)
    hourly = [
        MetricRollup(workload_class_id=class_id, resolution=Resolution.HOUR, bucket_start=hour, **fold_minutes(rows))
        for (class_id, hour), rows in by_hour.items()
    ]
    MetricRollup.objects.bulk_create(
        hourly, batch_size=500, update_conflicts=True, unique_fields=_ROLLUP_UNIQUE, update_fields=_HOURLY_UPDATE_FIELDS
    )
    return len(hourly)


@dataclass
class DownsampleSummary:
    hours_folded: int = 0
    minutes_deleted: int = 0
    hours_deleted: int = 0
    poll_runs_deleted: int = 0
    alerts_deleted: int = 0


def rollups_downsample(*, now: datetime) -> DownsampleSummary:
    """Fold minute rollups older than the minute retention into hourly rows and delete them, an
    hour at a time; delete hourly rows past their retention, and old poll runs and alerts.

    Safe to rerun or to interrupt: an hour's minutes are deleted only in the transaction that
    recomputed its hourly row from all of them, so a rerun either refolds the same minutes (same
    result) or finds them gone and leaves the hourly row alone."""
    summary = DownsampleSummary()
    cutoff = minutes_kept_since(now)
    while True:
        oldest = (
            MetricRollup.objects.filter(resolution=Resolution.MINUTE, bucket_start__lt=cutoff)
            .order_by("bucket_start")
            .values_list("bucket_start", flat=True)
            .first()
        )
        if oldest is None:
            break
        hour = floor_hour(oldest)
        with transaction.atomic():
            summary.hours_folded += _hourly_rollups_refresh(start=hour, end=hour + _HOUR)
            deleted, _ = MetricRollup.objects.filter(
                resolution=Resolution.MINUTE, bucket_start__gte=hour, bucket_start__lt=hour + _HOUR
            ).delete()
            summary.minutes_deleted += deleted
    hour_cutoff = floor_hour(now - timedelta(days=settings.TELEMETRY_HOUR_RETENTION_DAYS))
    summary.hours_deleted, _ = MetricRollup.objects.filter(
        resolution=Resolution.HOUR, bucket_start__lt=hour_cutoff
    ).delete()
    summary.poll_runs_deleted, _ = PollRun.objects.filter(
        started_at__lt=now - timedelta(days=settings.TELEMETRY_POLL_RUN_RETENTION_DAYS)
    ).delete()
    summary.alerts_deleted, _ = SloAlert.objects.filter(resolved_at__lt=hour_cutoff).delete()
    return summary


# --- SLOs, error budgets and burn-rate alerts --------------------------------------------------------------
_SLO_ROW_FIELDS = (
    "workload_class_id",
    "resolution",
    "bucket_start",
    "completed",
    "failed",
    "oldest_unacked_age_seconds",
    "latency_buckets",
    "queue_ages",
)


def slo_row_events(slo: Slo, row: dict) -> slo_math.Events:
    """Good and total events one rollup row contributes to an SLO."""
    if slo.kind == SloKind.SUCCESS_RATIO:
        return slo_math.success_events(row["completed"], row["failed"])
    if slo.kind == SloKind.COMPLETION_LATENCY:
        return slo_math.latency_events(row["latency_buckets"], slo.threshold_seconds)
    if row["resolution"] == Resolution.HOUR:
        return slo_math.queue_age_hour_events(row["queue_ages"], slo.threshold_seconds)
    return slo_math.queue_age_minute_events(row["oldest_unacked_age_seconds"], slo.threshold_seconds)


class _EventSeries:
    """Prefix sums of one SLO's events over one resolution's rows: any window sums in O(log n)."""

    def __init__(self, starts: list[datetime], events: list[slo_math.Events]):
        self.starts = starts
        self.good = [0.0, *accumulate(e.good for e in events)]
        self.total = [0.0, *accumulate(e.total for e in events)]

    def between(self, start: datetime, end: datetime) -> slo_math.Events:
        i, j = bisect_left(self.starts, start), bisect_left(self.starts, end)
        return slo_math.Events(self.good[j] - self.good[i], self.total[j] - self.total[i])


def _spans_query(spans: Iterable[Span]) -> Q:
    query = Q(pk__in=[])
    for span in spans:
        query |= Q(resolution=span.resolution, bucket_start__gte=span.start, bucket_start__lt=span.end)
    return query


@dataclass
class EvaluationSummary:
    slos: int = 0
    opened: list[SloAlert] = field(default_factory=list)
    resolved: list[SloAlert] = field(default_factory=list)


def slo_alerts_evaluate(*, now: datetime) -> EvaluationSummary:
    """Recompute every SLO's status (attainment and budget over its window, burn rate per alert
    window) and open or resolve burn-rate alerts. Reads a bounded number of rollup rows per class:
    minutes for the last hour and the windows' ragged edges, hourly rows for the rest."""
    summary = EvaluationSummary()
    slos = list(Slo.objects.select_related("workload_class").order_by("pk"))
    if not slos:
        return summary
    end = floor_minute(now)
    kept_since = minutes_kept_since(now)
    windows = {seconds: window_spans(end - timedelta(seconds=seconds), end) for seconds in slo_math.ALERT_WINDOWS}
    budget_windows = {
        days: window_spans(end - timedelta(days=days), end, minutes_kept_since=kept_since)
        for days in {slo.window_days for slo in slos}
    }
    all_spans = {span for spans in (*windows.values(), *budget_windows.values()) for span in spans}

    class_ids = sorted({slo.workload_class_id for slo in slos})
    rows_by_class: dict[int, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    rows = (
        MetricRollup.objects.filter(_spans_query(all_spans), workload_class_id__in=class_ids)
        .order_by("workload_class_id", "resolution", "bucket_start")
        .values(*_SLO_ROW_FIELDS)
    )
    for row in rows.iterator(chunk_size=5000):
        rows_by_class[row["workload_class_id"]][row["resolution"]].append(row)

    open_alerts = {(a.slo_id, a.rule): a for a in SloAlert.objects.filter(resolved_at__isnull=True)}
    statuses, new_alerts, changed_alerts = [], [], []
    for slo in slos:
        by_resolution = rows_by_class.get(slo.workload_class_id, {})
        series = {
            resolution: _EventSeries([r["bucket_start"] for r in rs], [slo_row_events(slo, r) for r in rs])
            for resolution, rs in by_resolution.items()
        }

        def events_in(spans: list[Span], series=series) -> slo_math.Events:
            total = slo_math.NO_EVENTS
            for span in spans:
                if span.resolution in series:
                    total = total + series[span.resolution].between(span.start, span.end)
            return total

        budget = slo_math.budget_fraction(slo.target_percent)
        window_events = {seconds: events_in(spans) for seconds, spans in windows.items()}
        burn_now = slo_math.burn_rate(window_events[3600], budget)
        status = slo_math.error_budget(
            events_in(budget_windows[slo.window_days]),
            budget=budget,
            window_seconds=slo.window_days * 86400,
            current_burn_rate=burn_now,
        )
        statuses.append(
            SloStatus(
                slo=slo,
                evaluated_at=now,
                window_start=end - timedelta(days=slo.window_days),
                good=status.good,
                total=status.total,
                attainment=status.attainment,
                met=status.met,
                budget_allowed=status.allowed,
                budget_consumed=status.consumed,
                budget_remaining=status.remaining,
                budget_remaining_percent=status.remaining_fraction * 100,
                exhaustion_seconds=status.exhaustion_seconds,
                windows={
                    slo_math.window_label(seconds): {
                        "good": events.good,
                        "total": events.total,
                        "burn_rate": slo_math.burn_rate(events, budget),
                    }
                    for seconds, events in window_events.items()
                },
            )
        )
        for rule in slo_math.BURN_RULES:
            alert = open_alerts.get((slo.pk, rule.name))
            verdict = slo_math.evaluate_rule(
                rule, window_events, budget=budget, min_traffic=slo.min_traffic, is_open=alert is not None
            )
            if alert is None and verdict.firing:
                alert = SloAlert(
                    slo=slo,
                    rule=rule.name,
                    severity=rule.severity,
                    factor=rule.factor,
                    long_window_seconds=rule.long_window,
                    short_window_seconds=rule.short_window,
                    opened_at=now,
                    opened_long_burn_rate=verdict.long_burn_rate,
                    opened_short_burn_rate=verdict.short_burn_rate,
                    last_long_burn_rate=verdict.long_burn_rate,
                    last_short_burn_rate=verdict.short_burn_rate,
                    peak_short_burn_rate=verdict.short_burn_rate,
                    last_evaluated_at=now,
                )
                new_alerts.append(alert)
                logger.warning("SLO alert opened: %s %s (burn %.1fx)", slo, rule.name, verdict.short_burn_rate)
            elif alert is not None:
                alert.last_long_burn_rate = verdict.long_burn_rate
                alert.last_short_burn_rate = verdict.short_burn_rate
                alert.peak_short_burn_rate = max(alert.peak_short_burn_rate, verdict.short_burn_rate)
                alert.last_evaluated_at = now
                if not verdict.firing:
                    alert.resolved_at = now
                    summary.resolved.append(alert)
                    logger.warning("SLO alert resolved: %s %s", slo, rule.name)
                changed_alerts.append(alert)

    with transaction.atomic():
        SloStatus.objects.bulk_create(
            statuses,
            update_conflicts=True,
            unique_fields=["slo"],
            update_fields=[f.name for f in SloStatus._meta.concrete_fields if f.name != "slo"],
        )
        SloAlert.objects.bulk_create(new_alerts)
        SloAlert.objects.bulk_update(
            changed_alerts,
            ["last_long_burn_rate", "last_short_burn_rate", "peak_short_burn_rate", "last_evaluated_at", "resolved_at"],
        )
    summary.slos = len(slos)
    summary.opened = new_alerts
    return summary


# --- Cost attribution --------------------------------------------------------------------------------------
GROUP_BY_CHOICES = ("class", "team")
_MONEY = Decimal("0.000001")


@dataclass
class CostLine:
    key: str  # class slug or team
    name: str
    owner_team: str
    currency: str
    has_rates: bool
    classes: int = 1
    instance_seconds: Decimal = Decimal(0)
    vcpu_seconds: Decimal = Decimal(0)
    gib_seconds: Decimal = Decimal(0)
    records: int = 0
    tokens: int = 0
    completed: int = 0
    failed: int = 0
    compute_cost: Decimal = Decimal(0)
    records_cost: Decimal = Decimal(0)
    tokens_cost: Decimal = Decimal(0)

    @property
    def total_cost(self) -> Decimal:
        return self.compute_cost + self.records_cost + self.tokens_cost

    @property
    def cost_per_1k_records(self) -> Decimal | None:
        return (self.total_cost * 1000 / self.records).quantize(_MONEY) if self.records else None

    @property
    def cost_per_completed_job(self) -> Decimal | None:
        return (self.total_cost / self.completed).quantize(_MONEY) if self.completed else None

    def add(self, other: CostLine) -> None:
        for name in (
            "instance_seconds",
            "vcpu_seconds",
            "gib_seconds",
            "records",
            "tokens",
            "completed",
            "failed",
            "compute_cost",
            "records_cost",
            "tokens_cost",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.classes += other.classes
        self.has_rates = self.has_rates and other.has_rates


@dataclass
class CostReport:
    start: datetime
    end: datetime
    group_by: str
    lines: list[CostLine]


def class_cost(wc: WorkloadClass, usage: dict) -> CostLine:
    rates = wc.cost_rates
    instance_seconds = Decimal(str(round(usage.get("instance_seconds") or 0.0, 3)))
    line = CostLine(
        key=wc.slug,
        name=wc.name,
        owner_team=wc.owner_team,
        currency=rates.currency if rates else "",
        has_rates=rates is not None,
        instance_seconds=instance_seconds,
        vcpu_seconds=instance_seconds * wc.vcpu_per_instance,
        gib_seconds=instance_seconds * wc.memory_gib_per_instance,
        records=int(usage.get("records") or 0),
        tokens=int(usage.get("tokens") or 0),
        completed=int(usage.get("completed") or 0),
        failed=int(usage.get("failed") or 0),
    )
    if rates is not None:
        line.compute_cost = (line.vcpu_seconds * rates.vcpu_second + line.gib_seconds * rates.gib_second).quantize(
            _MONEY
        )
        line.records_cost = (line.records * rates.per_record).quantize(_MONEY)
        line.tokens_cost = (Decimal(line.tokens) / 1000 * rates.per_1k_tokens).quantize(_MONEY)
    return line


def class_usage(*, start: datetime, end: datetime, class_ids: Iterable[int] | None = None, now: datetime) -> dict:
    """{class_id: {instance_seconds, records, tokens, completed, failed}} summed in SQL over the
    rollups covering [start, end)."""
    spans = window_spans(start, end, minutes_kept_since=minutes_kept_since(now))
    if not spans:
        return {}
    rows = MetricRollup.objects.filter(_spans_query(spans))
    if class_ids is not None:
        rows = rows.filter(workload_class_id__in=list(class_ids))
    totals = rows.values("workload_class_id").annotate(
        instance_seconds=Sum("instance_seconds"),
        records=Sum("records"),
        tokens=Sum("tokens"),
        completed=Sum("completed"),
        failed=Sum("failed"),
    )
    return {row.pop("workload_class_id"): row for row in totals}


def cost_report(*, start: datetime, end: datetime, group_by: str = "class", now: datetime | None = None) -> CostReport:
    """Cost per class (or per owner team) for [start, end): instance-seconds from the instance
    series x vCPU and memory x the class's rates, plus records and tokens at their rates. Teams
    are split by currency, never summed across currencies."""
    if group_by not in GROUP_BY_CHOICES:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY_CHOICES)}.")
    now = now or timezone.now()
    classes = list(WorkloadClass.objects.select_related("cost_rates").order_by("slug"))
    usage = class_usage(start=start, end=end, now=now)
    lines = [class_cost(wc, usage.get(wc.pk, {})) for wc in classes]
    if group_by == "team":
        teams: dict[tuple[str, str], CostLine] = {}
        for line in lines:
            key = (line.owner_team, line.currency)
            if key not in teams:
                teams[key] = CostLine(
                    key=line.owner_team,
                    name=line.owner_team,
                    owner_team=line.owner_team,
                    currency=line.currency,
                    has_rates=True,
                    classes=0,
                )
            teams[key].add(line)
        lines = sorted(teams.values(), key=lambda t: (t.key, t.currency))
    return CostReport(start=start, end=end, group_by=group_by, lines=lines)
