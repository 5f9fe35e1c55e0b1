"""Polling: ask the Metrics port for every polled metric of every class and upsert per-class,
per-minute rollups. One port call per metric whatever the number of classes; on Cloud Monitoring
that is one list_time_series per metric per Monitoring scoping project (each class's environment
names its scoping project, whose metrics scope covers the environment's projects), whatever the
number of projects and classes. Then refresh the hourly rows of the hours touched
(workloads/services/rollups.py) and each class's live values (ClassTelemetry).

A port that offers the worker reports' metrics as a SELECT on our own database (Metrics.report_rows:
the local provider on PostgreSQL) has them folded into the minute rollups, and the counters' gains
worked out, by one statement (workloads.fastsql.report_fold.report_rollups_fold) instead of points and cells in
Python; the rows are the same (tests/workloads/test_report_fold_sql.py).

Every function takes the time as an explicit `now` and is safe to run twice or late: rollups are
upserted from the provider's current values (a re-poll replaces, never adds).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, transaction

from workloads.domain import histogram
from workloads.domain.windows import floor_hour, floor_minute
from workloads.fastsql.report_fold import FoldClass, FoldedClass, report_rollups_fold
from workloads.fastsql.writes import insert_rows
from workloads.models import ClassTelemetry, MetricRollup, PollRun, Resolution, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.base import (
    GAUGE_METRICS,
    LATENCY_BUCKET_BOUNDS,
    REPORT_METRICS,
    Distribution,
    MetricKind,
    Metrics,
    MetricTarget,
    Outcomes,
    Point,
    ProviderError,
    ReportRows,
    RuntimeMetric,
)
from workloads.providers.specs import metric_target
from workloads.runtimes import reads_runtime_metrics
from workloads.selectors.rollups import METRIC_FIELDS, POLLED_METRICS
from workloads.services.counters import counters_advance
from workloads.services.rollups import LiveValues, hourly_rollups_refold, live_values
from workloads.services.slo_thresholds import Thresholds, latency_good, queue_age_good, slo_thresholds

logger = logging.getLogger(__name__)

STEP_SECONDS = 60
_STEP = timedelta(seconds=STEP_SECONDS)
_HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ROLLUP_UNIQUE = ["workload_class", "resolution", "bucket_start"]
# Every column a new rollup row is written with, and the model's default for each.
_ROLLUP_COLUMNS = [field.name for field in MetricRollup._meta.concrete_fields if not field.primary_key]
_ROLLUP_DEFAULTS = {field.name: field.get_default() for field in MetricRollup._meta.concrete_fields}
_TELEMETRY_FIELDS = [field.name for field in ClassTelemetry._meta.concrete_fields]  # the class (its pk) first


@dataclass
class PollSummary:
    window_start: datetime
    window_end: datetime
    runs: list[PollRun] = field(default_factory=list)
    rollups_written: int = 0

    @property
    def failed(self) -> list[PollRun]:
        return [run for run in self.runs if not run.ok]


def _histogram(metric, value) -> list[int]:
    if not isinstance(value, Distribution):
        raise ValueError(f"{metric} points must be Distributions, got {type(value).__name__}.")
    if tuple(value.bounds) != LATENCY_BUCKET_BOUNDS or len(value.bucket_counts) != histogram.BUCKETS:
        raise ValueError(f"{metric} points must use LATENCY_BUCKET_BOUNDS ({histogram.BUCKETS} buckets).")
    return [int(c) for c in value.bucket_counts]


def _runtime_point_fields(metric: RuntimeMetric, value) -> dict:
    """An observed runtime's own figures: in their own columns, apart from the worker kit's."""
    if metric is RuntimeMetric.OUTCOMES:
        if not isinstance(value, Outcomes):
            raise ValueError(f"{metric} points must be Outcomes, got {type(value).__name__}.")
        return {"executions": round(value.executions), "execution_errors": round(value.errors)}
    if metric is RuntimeMetric.LATENCY:
        counts = _histogram(metric, value)
        return {
            "runtime_latency_buckets": counts,
            "runtime_latency_count": int(value.count),
            "runtime_latency_sum": float(value.sum),
        }
    seconds = float(value)  # INSTANCE_TIME: instance-seconds in the step
    return {"instance_seconds": seconds, "instances": seconds / STEP_SECONDS}


def _latency_fields(value, thresholds: Thresholds) -> dict:
    counts = _histogram(MetricKind.COMPLETION_LATENCY, value)
    return {
        "latency_buckets": counts,
        "latency_count": int(value.count),
        "latency_sum": float(value.sum),
        "latency_good": latency_good(counts, thresholds.latency),
    }


def _queue_age_fields(value, thresholds: Thresholds) -> dict:
    age = float(value)
    return {
        "oldest_unacked_age_seconds": age,
        "queue_age_minutes": 1,
        "queue_age_good": queue_age_good(age, thresholds.queue_age),
    }


def _instance_count_fields(value, _thresholds: Thresholds) -> dict:
    instances = float(value)
    return {"instances": instances, "instance_seconds": instances * STEP_SECONDS}


def _fields_reader(metric: MetricKind | RuntimeMetric) -> Callable[[object, Thresholds], dict]:
    """How a point of `metric` becomes rollup columns, chosen once per metric rather than
    dispatched again for every point."""
    if isinstance(metric, RuntimeMetric):
        return lambda value, _thresholds: _runtime_point_fields(metric, value)
    if metric is MetricKind.COMPLETION_LATENCY:
        return _latency_fields
    if metric is MetricKind.OLDEST_UNACKED_AGE:
        return _queue_age_fields
    if metric is MetricKind.INSTANCE_COUNT:
        return _instance_count_fields
    (column,) = METRIC_FIELDS[metric]
    if metric in GAUGE_METRICS:
        return lambda value, _thresholds: {column: float(value)}
    return lambda value, _thresholds: {column: round(float(value))}


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, ProviderError):
        kind = "permanent" if exc.permanent else "transient"
        code = f" {exc.code}" if exc.code else ""
        return f"{kind}{code}: {exc.message}"[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]


def metrics_poll(*, now: datetime, window_minutes: int | None = None) -> PollSummary:
    """Ask the Metrics port for the last `window_minutes` of every metric, for all classes at once
    (one call per metric), and upsert per-class, per-minute rollups; then refresh the hourly rows
    of the hours touched and each class's live values. A failing metric is recorded and skipped;
    the others still land."""
    window_minutes = window_minutes or settings.TELEMETRY_POLL_WINDOW_MINUTES
    # Steps are aligned to whole minutes so every poll cuts the same buckets: a misaligned end
    # would spread one minute's counts over two buckets and a re-poll could count them twice.
    end = floor_minute(now)
    if settings.TELEMETRY_POLL_CURRENT_MINUTE:
        # The minute under way too (the embedded demo: its tables answer for "now" exactly). Safe
        # to re-poll: a later poll replaces that minute's values with the complete ones.
        end += _STEP
    start = end - timedelta(minutes=window_minutes)
    summary = PollSummary(window_start=start, window_end=end)
    classes = list(
        WorkloadClass.objects.order_by("pk")
        .select_related("environment")
        .only(
            "pk",
            "slug",
            "subscription",
            "dead_letter_subscription",
            "worker_pool",
            "runtime",
            "runtime_resource",
            "environment__monitoring_project",
        )
    )
    if not classes:
        return summary
    targets = [metric_target(wc) for wc in classes]
    class_ids = {wc.slug: wc.pk for wc in classes}
    states = {state.workload_class_id: state for state in ClassTelemetry.objects.all()}
    current = slo_thresholds()
    # Rows are judged against the thresholds the class's existing rows were judged with; the SLO
    # evaluation notices a changed threshold and recomputes every row of the class at once.
    thresholds = {
        wc.pk: Thresholds(states[wc.pk].queue_age_threshold_seconds, states[wc.pk].latency_threshold_seconds)
        if wc.pk in states
        else current.get(wc.pk, Thresholds())
        for wc in classes
    }
    metrics_port = get_providers().metrics
    clock = time.monotonic()
    reports = _report_rows(metrics_port, targets, start=start, end=end)
    cells, newest = collect_cells(
        metrics_port,
        targets,
        class_ids,
        thresholds,
        start=start,
        end=end,
        now=now,
        runs=summary.runs,
        skip=REPORT_METRICS if reports else (),
    )

    with transaction.atomic():
        folded = []
        if reports:
            folded = _reports_fold(
                reports, classes, thresholds, newest, start=start, end=end, now=now, clock=clock, runs=summary.runs
            )
        PollRun.objects.bulk_create(summary.runs)
        counters_advance(cells, now=now, folded=folded)  # before the upsert: it reads what the minutes held
        for fold in folded:
            newest[fold.class_id] = max(fold.newest, newest.get(fold.class_id, fold.newest))
        summary.rollups_written = minute_rollups_upsert(cells, newest, fetched_at=now)
        summary.rollups_written += _folded_apart(folded, cells)
        buckets = [bucket for _class_id, bucket in cells]
        if folded:
            minutes = [minute for fold in folded for minute in fold.minutes]
            buckets += [_EPOCH + min(minutes) * _STEP, _EPOCH + max(minutes) * _STEP]
        if buckets:
            hours_start, hours_end = floor_hour(min(buckets)), floor_hour(max(buckets)) + _HOUR
            hourly_rollups_refold(class_ids=newest, start=hours_start, end=hours_end)
            live = live_values(class_ids=newest, start=end - _HOUR, end=end)
            _class_telemetry_record(live, newest, states, thresholds, fetched_at=now)
    return summary


def collect_cells(
    metrics_port: Metrics,
    targets: list[MetricTarget],
    class_ids: dict[str, int],
    thresholds: dict[int, Thresholds],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    runs: list[PollRun],
    skip: tuple[MetricKind, ...] = (),
) -> tuple[dict[tuple[int, datetime], dict], dict[int, datetime]]:
    """Every polled metric of the targets over [start, end) but those in `skip`, as rollup cells
    {(class id, minute): columns} and each class's newest sample; one PollRun per call appended to
    `runs`. Then the observed runtimes' own metrics, for the classes whose runtime publishes them
    (one read per RuntimeMetric, which the adapter makes one call per Google metric type). Shared
    by the poll and the backfill (workloads/services/backfill.py)."""
    observed = [t for t in targets if t.runtime_resource]
    reads: list[tuple[MetricKind | RuntimeMetric, list[MetricTarget]]] = [
        (m, targets) for m in POLLED_METRICS if m not in skip
    ]
    for metric in RuntimeMetric:
        readers = [t for t in observed if reads_runtime_metrics(t.runtime, metric.value)]
        if readers:
            reads.append((metric, readers))
    cells: dict[tuple[int, datetime], dict] = defaultdict(dict)
    newest: dict[int, datetime] = {}
    clock = time.monotonic()
    for metric, asked in reads:
        run = PollRun(
            metric=metric.value,
            started_at=now + timedelta(seconds=time.monotonic() - clock),
            window_start=start,
            window_end=end,
            classes=len(asked),
        )
        try:
            if isinstance(metric, RuntimeMetric):
                series = metrics_port.runtime_series(metric, asked, start=start, end=end, step_seconds=STEP_SECONDS)
            else:
                series = metrics_port.series(metric, asked, start=start, end=end, step_seconds=STEP_SECONDS)
            received, latest = _cells_from_series(metric, series, class_ids, thresholds, start=start, end=end)
        except Exception as exc:  # any failure of one metric must leave the other metrics' polls running
            logger.warning("metric poll failed for %s: %s", metric.value, exc, exc_info=True)
            run.ok, run.error = False, _describe_error(exc)
        else:
            for key, values in received.items():
                cells[key].update(values)
            for class_id, moment in latest.items():
                moment = min(moment, now)  # a step still under way holds samples up to now only
                newest[class_id] = max(moment, newest.get(class_id, moment))
            run.ok, run.points = True, len(received)
        run.finished_at = now + timedelta(seconds=time.monotonic() - clock)
        runs.append(run)
    return cells, newest


def _folded_apart(folded: list[FoldedClass], cells: dict[tuple[int, datetime], dict]) -> int:
    """How many of the minutes folded in SQL are not among the cells' (rows written by both count once)."""
    if not cells:
        return sum(len(fold.minutes) for fold in folded)
    polled = {(class_id, (bucket - _EPOCH) // _STEP) for class_id, bucket in cells}
    return sum(1 for fold in folded for minute in fold.minutes if (fold.class_id, minute) not in polled)


def _report_rows(metrics_port: Metrics, targets: list[MetricTarget], *, start: datetime, end: datetime):
    """The port's ReportRows for the window when it offers them on our own database, else None
    (then the report metrics are read as series, like every other metric)."""
    try:
        reports = metrics_port.report_rows(targets, start=start, end=end, step_seconds=STEP_SECONDS)
    except Exception as exc:  # the generic path reads them, and records its own failures
        logger.warning("report rows unavailable, reading series instead: %s", exc, exc_info=True)
        return None
    if reports is None or reports.using != DEFAULT_DB_ALIAS or connection.vendor != "postgresql":
        return None
    return reports


def _reports_fold(
    reports: ReportRows,
    classes: list[WorkloadClass],
    thresholds: dict[int, Thresholds],
    newest: dict[int, datetime],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    clock: float,
    runs: list[PollRun],
) -> list[FoldedClass]:
    """Fold the report metrics into minute rollups in SQL (workloads.fastsql.report_fold.report_rollups_fold),
    recording a PollRun per metric as a series() read would. A failure rolls the fold back alone
    and is recorded on each of them; the other metrics still land."""
    rates = {
        pk: (per_record, per_1k_tokens)
        for pk, per_record, per_1k_tokens in WorkloadClass.objects.filter(
            pk__in=[wc.pk for wc in classes], cost_rates__isnull=False
        ).values_list("pk", "cost_rates__per_record", "cost_rates__per_1k_tokens")
    }
    fold_classes = []
    for wc in classes:
        latency = thresholds[wc.pk].latency
        below, share = histogram.below_threshold(latency) if latency is not None else (None, None)
        per_record, per_1k_tokens = rates.get(wc.pk, (None, None))
        fold_classes.append(
            FoldClass(
                class_id=wc.pk,
                slug=wc.slug,
                latency_below=below,
                latency_share=share,
                newest_other=newest.get(wc.pk),
                per_record=per_record,
                per_1k_tokens=per_1k_tokens,
            )
        )
    started_at = now + timedelta(seconds=time.monotonic() - clock)
    error, folded = "", []
    try:
        with transaction.atomic():
            folded = report_rollups_fold(
                reports,
                fold_classes,
                buckets_from=start - _STEP,
                buckets_to=end,
                step_seconds=STEP_SECONDS,
                now=now,
                fetched_at=now,
            )
    except Exception as exc:  # as a failing series() call: recorded, the other metrics go on
        logger.warning("metric poll failed for the worker reports: %s", exc, exc_info=True)
        error = _describe_error(exc)
    finished_at = now + timedelta(seconds=time.monotonic() - clock)
    points = sum(len(fold.minutes) for fold in folded)
    for metric in REPORT_METRICS:
        run = PollRun(
            metric=metric.value,
            started_at=started_at,
            finished_at=finished_at,
            window_start=start,
            window_end=end,
            classes=len(classes),
        )
        run.ok, run.error, run.points = not error, error, points
        runs.append(run)
    return folded


def _cells_from_series(
    metric: MetricKind | RuntimeMetric,
    series: dict[str, list[Point]],
    class_ids: dict[str, int],
    thresholds: dict[int, Thresholds],
    *,
    start: datetime,
    end: datetime,
) -> tuple[dict[tuple[int, datetime], dict], dict[int, datetime]]:
    fields = _fields_reader(metric)
    minutes = _Minutes(start=start, end=end)
    received: dict[tuple[int, datetime], dict] = {}
    latest: dict[int, datetime] = {}
    for slug, points in series.items():
        class_id = class_ids.get(slug)
        if class_id is None:
            continue  # a class deleted while the call was in flight
        limits = thresholds[class_id]
        kept = [point for point in points if minutes[point.end] is not None]
        if kept:
            received.update(((class_id, minutes[point.end]), fields(point.value, limits)) for point in kept)
            latest[class_id] = max(point.end for point in kept)
    return received, latest


class _Minutes(dict):
    """A point's end -> the minute its step began, or None when that is not what was asked for;
    worked out once per distinct end (a window's few steps), not once per point."""

    def __init__(self, *, start: datetime, end: datetime):
        super().__init__()
        self.start, self.end = start, end

    def __missing__(self, point_end: datetime) -> datetime | None:
        bucket = floor_minute(point_end - _STEP)
        # The step ending at `start` is accepted too (providers differ on whether the edge
        # step is included); anything else is not what was asked for.
        self[point_end] = bucket if self.start - _STEP <= bucket < self.end else None
        return self[point_end]


def minute_rollups_upsert(
    cells: dict[tuple[int, datetime], dict], newest: dict[int, datetime], *, fetched_at: datetime
) -> int:
    # Rows are grouped by the columns they carry, because one upsert statement updates the same
    # columns for every row: a minute with only a backlog sample must not reset its counters.
    # insert_rows, not bulk_create: the ORM spent seconds of Python per 10k rows preparing them.
    groups: dict[frozenset[str], list[dict]] = defaultdict(list)
    for (class_id, bucket), values in cells.items():
        groups[frozenset(values)].append(
            {
                **_ROLLUP_DEFAULTS,
                "workload_class": class_id,
                "resolution": Resolution.MINUTE,
                "bucket_start": bucket,
                "fetched_at": fetched_at,
                "newest_sample_age_seconds": max(0.0, (fetched_at - newest[class_id]).total_seconds()),
                **values,
            }
        )
    for columns, rows in groups.items():
        insert_rows(
            MetricRollup,
            _ROLLUP_COLUMNS,
            [[row[name] for name in _ROLLUP_COLUMNS] for row in rows],
            unique_fields=_ROLLUP_UNIQUE,
            update_fields=[*sorted(columns), "fetched_at", "newest_sample_age_seconds"],
        )
    return len(cells)


def _class_telemetry_record(
    live: dict[int, LiveValues],
    newest: dict[int, datetime],
    states: dict[int, ClassTelemetry],
    thresholds: dict[int, Thresholds],
    *,
    fetched_at: datetime,
) -> None:
    """Freshness and live values (latest gauges, last hour's p95 and outcomes) of the classes
    this poll brought data for; the others keep theirs, so a class whose metrics stopped keeps
    its last values and shows as stale."""
    records = []
    for class_id, moment in newest.items():
        previous = states.get(class_id)
        record = ClassTelemetry(
            workload_class_id=class_id,
            fetched_at=fetched_at,
            newest_sample_at=max(moment, previous.newest_sample_at or moment) if previous else moment,
            queue_age_threshold_seconds=thresholds[class_id].queue_age,
            latency_threshold_seconds=thresholds[class_id].latency,
        )
        values = live.get(class_id, LiveValues())
        for gauge, value in values.gauges.items():
            setattr(record, gauge, value)
        record.completed_last_hour += values.completed
        record.failed_last_hour += values.failed
        record.latency_p95_seconds = histogram.percentile(values.latency, 95.0)
        records.append(record)
    # insert_rows, not bulk_create: the ORM's preparing of 200 rows' 14 fields cost more than the statement.
    insert_rows(
        ClassTelemetry,
        _TELEMETRY_FIELDS,
        [[getattr(record, field.attname) for field in ClassTelemetry._meta.concrete_fields] for record in records],
        unique_fields=["workload_class"],
        update_fields=_TELEMETRY_FIELDS[1:],
    )
