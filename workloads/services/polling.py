"""Polling: ask the Metrics port for every polled metric of every class and upsert per-class,
per-minute rollups. One port call per metric whatever the number of classes; on Cloud Monitoring
that is one list_time_series per metric per Monitoring scoping project (each class's environment
names its scoping project, whose metrics scope covers the environment's projects), whatever the
number of projects and classes. Then refresh the hourly rows of the hours touched
(workloads/services/rollups.py) and each class's live values (ClassTelemetry).

Every function takes the time as an explicit `now` and is safe to run twice or late: rollups are
upserted from the provider's current values (a re-poll replaces, never adds).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from workloads.domain import histogram
from workloads.domain.windows import floor_hour, floor_minute
from workloads.fastsql import insert_rows
from workloads.models import ClassTelemetry, MetricRollup, PollRun, Resolution, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.base import (
    GAUGE_METRICS,
    LATENCY_BUCKET_BOUNDS,
    Distribution,
    MetricKind,
    Metrics,
    MetricTarget,
    Outcomes,
    Point,
    ProviderError,
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

_ROLLUP_UNIQUE = ["workload_class", "resolution", "bucket_start"]
# Every column a new rollup row is written with, and the model's default for each.
_ROLLUP_COLUMNS = [field.name for field in MetricRollup._meta.concrete_fields if not field.primary_key]
_ROLLUP_DEFAULTS = {field.name: field.get_default() for field in MetricRollup._meta.concrete_fields}


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
    cells, newest = collect_cells(
        get_providers().metrics, targets, class_ids, thresholds, start=start, end=end, now=now, runs=summary.runs
    )

    with transaction.atomic():
        PollRun.objects.bulk_create(summary.runs)
        counters_advance(cells, now=now)  # before the upsert: it reads what the minutes held
        summary.rollups_written = minute_rollups_upsert(cells, newest, fetched_at=now)
        if cells:
            buckets = [bucket for _class_id, bucket in cells]
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
) -> tuple[dict[tuple[int, datetime], dict], dict[int, datetime]]:
    """Every polled metric of the targets over [start, end), as rollup cells {(class id, minute):
    columns} and each class's newest sample; one PollRun per call appended to `runs`. Then the
    observed runtimes' own metrics, for the classes whose runtime publishes them (one read per
    RuntimeMetric, which the adapter makes one call per Google metric type). Shared by the poll
    and the backfill (workloads/services/backfill.py)."""
    observed = [t for t in targets if t.runtime_resource]
    reads: list[tuple[MetricKind | RuntimeMetric, list[MetricTarget]]] = [(m, targets) for m in POLLED_METRICS]
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
    ClassTelemetry.objects.bulk_create(
        records,
        update_conflicts=True,
        unique_fields=["workload_class"],
        update_fields=[f.name for f in ClassTelemetry._meta.concrete_fields if f.name != "workload_class"],
    )
