"""Telemetry: poll the Metrics port into rollups, fold old minutes into hours, evaluate SLOs and
burn-rate alerts. (Cost attribution only reads the rollups: workloads/selectors/cost.py.)

Every function takes the time as an explicit `now` and is safe to run twice or late: rollups are
upserted from the provider's current values (a re-poll replaces, never adds), hourly rows are
recomputed from their minutes, and alert state only moves when the numbers say so.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum

from workloads.batch_delete import delete_in_batches
from workloads.fastinsert import insert_rows
from workloads.models import (
    ClassTelemetry,
    DeadLetter,
    DeadLetterStatus,
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
from workloads.selectors.rollups import METRIC_FIELDS, POLLED_METRICS, minutes_kept_since, spans_query
from workloads.services.alert_incidents import SyncSummary, incidents_sync
from workloads.services.counters import counters_advance
from workloads.telemetry import histogram
from workloads.telemetry import slo as slo_math
from workloads.telemetry.windows import floor_hour, floor_minute, window_spans

logger = logging.getLogger(__name__)

STEP_SECONDS = 60
_STEP = timedelta(seconds=STEP_SECONDS)
_HOUR = timedelta(hours=1)

_ROLLUP_UNIQUE = ["workload_class", "resolution", "bucket_start"]
# Every column a new rollup row is written with, and the model's default for each.
_ROLLUP_COLUMNS = [field.name for field in MetricRollup._meta.concrete_fields if not field.primary_key]
_ROLLUP_DEFAULTS = {field.name: field.get_default() for field in MetricRollup._meta.concrete_fields}


@dataclass(frozen=True)
class Thresholds:
    """The class's queue-age and latency SLO thresholds (None: no such SLO)."""

    queue_age: float | None = None
    latency: float | None = None


def slo_thresholds(class_ids: Iterable[int] | None = None) -> dict[int, Thresholds]:
    slos = Slo.objects.filter(kind__in=[SloKind.QUEUE_AGE, SloKind.COMPLETION_LATENCY])
    if class_ids is not None:
        slos = slos.filter(workload_class_id__in=list(class_ids))
    found: dict[int, dict] = defaultdict(dict)
    for class_id, kind, threshold in slos.values_list("workload_class_id", "kind", "threshold_seconds"):
        found[class_id]["queue_age" if kind == SloKind.QUEUE_AGE else "latency"] = threshold
    return {class_id: Thresholds(**values) for class_id, values in found.items()}


def _queue_age_good(age: float | None, threshold: float | None) -> int:
    return 0 if threshold is None else int(slo_math.queue_age_minute_events(age, threshold).good)


def _latency_good(counts, threshold: float | None) -> float:
    return 0.0 if threshold is None else slo_math.latency_events(counts, threshold).good


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


def _point_fields(metric: MetricKind, value, thresholds: Thresholds) -> dict:
    if metric is MetricKind.COMPLETION_LATENCY:
        if not isinstance(value, Distribution):
            raise ValueError(f"{metric} points must be Distributions, got {type(value).__name__}.")
        if tuple(value.bounds) != LATENCY_BUCKET_BOUNDS or len(value.bucket_counts) != histogram.BUCKETS:
            raise ValueError(f"{metric} points must use LATENCY_BUCKET_BOUNDS ({histogram.BUCKETS} buckets).")
        counts = [int(c) for c in value.bucket_counts]
        return {
            "latency_buckets": counts,
            "latency_count": int(value.count),
            "latency_sum": float(value.sum),
            "latency_good": _latency_good(counts, thresholds.latency),
        }
    number = float(value)
    if metric is MetricKind.OLDEST_UNACKED_AGE:
        return {
            "oldest_unacked_age_seconds": number,
            "queue_age_minutes": 1,
            "queue_age_good": _queue_age_good(number, thresholds.queue_age),
        }
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
        WorkloadClass.objects.order_by("pk").only(
            "pk", "slug", "subscription", "dead_letter_subscription", "worker_pool"
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
        summary.runs.append(run)

    with transaction.atomic():
        PollRun.objects.bulk_create(summary.runs)
        counters_advance(cells, now=now)  # before the upsert: it reads what the minutes held
        summary.rollups_written = _minute_rollups_upsert(cells, newest, fetched_at=now)
        if cells:
            buckets = [bucket for _class_id, bucket in cells]
            hours_start, hours_end = floor_hour(min(buckets)), floor_hour(max(buckets)) + _HOUR
            live_start = end - _HOUR
            rows = _minute_rows(class_ids=newest, start=min(hours_start, live_start), end=max(hours_end, end))
            _hourly_rollups_upsert(rows, start=hours_start, end=hours_end)
            _class_telemetry_record(
                rows, newest, states, thresholds, live_start=live_start, live_end=end, fetched_at=now
            )
    return summary


def _cells_from_series(
    metric: MetricKind,
    series: dict[str, list[Point]],
    class_ids: dict[str, int],
    thresholds: dict[int, Thresholds],
    *,
    start: datetime,
    end: datetime,
) -> tuple[dict[tuple[int, datetime], dict], dict[int, datetime]]:
    received: dict[tuple[int, datetime], dict] = {}
    latest: dict[int, datetime] = {}
    for slug, points in series.items():
        class_id = class_ids.get(slug)
        if class_id is None:
            continue  # a class deleted while the call was in flight
        for point in points:
            bucket = floor_minute(point.end - _STEP)
            # The step ending at `start` is accepted too (providers differ on whether the edge
            # step is included); anything else is not what was asked for.
            if not (start - _STEP <= bucket < end):
                continue
            received[(class_id, bucket)] = _point_fields(metric, point.value, thresholds[class_id])
            latest[class_id] = max(point.end, latest.get(class_id, point.end))
    return received, latest


def _minute_rollups_upsert(
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


_LIVE_GAUGES = (
    "oldest_unacked_age_seconds",
    "backlog",
    "dead_letter_backlog",
    "dead_letter_oldest_age_seconds",
    "instances",
)


def _class_telemetry_record(
    rows: dict[int, list[dict]],
    newest: dict[int, datetime],
    states: dict[int, ClassTelemetry],
    thresholds: dict[int, Thresholds],
    *,
    live_start: datetime,
    live_end: datetime,
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
        latency = histogram.empty()
        for row in rows.get(class_id, []):
            if not live_start <= row["bucket_start"] < live_end:
                continue
            for gauge in _LIVE_GAUGES:
                if row[gauge] is not None:
                    setattr(record, gauge, row[gauge])  # rows are oldest first: the last one wins
            histogram.add_into(latency, row["latency_buckets"])
            record.completed_last_hour += row["completed"]
            record.failed_last_hour += row["failed"]
        record.latency_p95_seconds = histogram.percentile(latency, 95.0)
        records.append(record)
    ClassTelemetry.objects.bulk_create(
        records,
        update_conflicts=True,
        unique_fields=["workload_class"],
        update_fields=[f.name for f in ClassTelemetry._meta.concrete_fields if f.name != "workload_class"],
    )


# --- Hourly rollups and downsampling ----------------------------------------------------------------------
_FOLD_FIELDS = (
    "workload_class_id",
    "bucket_start",
    "oldest_unacked_age_seconds",
    "backlog",
    "dead_letter_backlog",
    "dead_letter_oldest_age_seconds",
    "instances",
    "instance_seconds",
    "completed",
    "failed",
    "records",
    "tokens",
    "latency_buckets",
    "latency_count",
    "latency_sum",
    "latency_good",
    "queue_age_minutes",
    "queue_age_good",
    "fetched_at",
    "newest_sample_age_seconds",
)
_SUMMED = ("instance_seconds", "completed", "failed", "records", "tokens", "queue_age_minutes", "queue_age_good")
_HOURLY_UPDATE_FIELDS = [name for name in _FOLD_FIELDS if name not in ("workload_class_id", "bucket_start")] + [
    "queue_ages"
]


def fold_minutes(minutes: Iterable[dict]) -> dict:
    """One hour's values from its minute rows: maxima for ages and backlogs, the mean of instance
    samples, sums for counters, SLO events, instance-seconds and histograms, and the minutes'
    queue ages, sorted (so queue-age events can be recounted for a new threshold)."""
    ages, backlogs, dead_letters, dead_letter_ages, instances = [], [], [], [], []
    sums = dict.fromkeys(_SUMMED, 0)
    latency = histogram.empty()
    latency_count, latency_sum, latency_good = 0, 0.0, 0.0
    fetched_at, newest_age = None, None
    for row in minutes:
        for values, key in (
            (ages, "oldest_unacked_age_seconds"),
            (backlogs, "backlog"),
            (dead_letters, "dead_letter_backlog"),
            (dead_letter_ages, "dead_letter_oldest_age_seconds"),
            (instances, "instances"),
        ):
            if row[key] is not None:
                values.append(row[key])
        for key in _SUMMED:
            sums[key] += row[key]
        histogram.add_into(latency, row["latency_buckets"])
        latency_count += row["latency_count"]
        latency_sum += row["latency_sum"]
        latency_good += row["latency_good"]
        if fetched_at is None or row["fetched_at"] > fetched_at:
            fetched_at = row["fetched_at"]
        if row["newest_sample_age_seconds"] is not None:
            newest_age = min(row["newest_sample_age_seconds"], newest_age if newest_age is not None else float("inf"))
    return {
        "oldest_unacked_age_seconds": max(ages) if ages else None,
        "backlog": max(backlogs) if backlogs else None,
        "dead_letter_backlog": max(dead_letters) if dead_letters else None,
        "dead_letter_oldest_age_seconds": max(dead_letter_ages) if dead_letter_ages else None,
        "instances": sum(instances) / len(instances) if instances else None,
        **sums,
        "latency_buckets": latency if any(latency) else [],
        "latency_count": latency_count,
        "latency_sum": latency_sum,
        "latency_good": latency_good,
        "queue_ages": sorted(ages),
        "fetched_at": fetched_at,
        "newest_sample_age_seconds": newest_age,
    }


def _minute_rows(*, start: datetime, end: datetime, class_ids: Iterable[int] | None = None) -> dict[int, list[dict]]:
    """Minute rollups in [start, end) as dicts, per class, oldest first."""
    minutes = MetricRollup.objects.filter(resolution=Resolution.MINUTE, bucket_start__gte=start, bucket_start__lt=end)
    if class_ids is not None:
        minutes = minutes.filter(workload_class_id__in=list(class_ids))
    rows: dict[int, list[dict]] = defaultdict(list)
    for row in minutes.order_by("workload_class_id", "bucket_start").values(*_FOLD_FIELDS).iterator(chunk_size=2000):
        rows[row["workload_class_id"]].append(row)
    return rows


def _hourly_rollups_upsert(rows: dict[int, list[dict]], *, start: datetime, end: datetime) -> int:
    """Recompute the hourly rows of [start, end) (whole hours) from their minutes and upsert them."""
    by_hour: dict[tuple[int, datetime], list[dict]] = defaultdict(list)
    for class_id, class_rows in rows.items():
        for row in class_rows:
            if start <= row["bucket_start"] < end:
                by_hour[(class_id, floor_hour(row["bucket_start"]))].append(row)
    hourly = [
        MetricRollup(workload_class_id=class_id, resolution=Resolution.HOUR, bucket_start=hour, **fold_minutes(group))
        for (class_id, hour), group in by_hour.items()
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
            rows = _minute_rows(start=hour, end=hour + _HOUR)
            summary.hours_folded += _hourly_rollups_upsert(rows, start=hour, end=hour + _HOUR)
            deleted, _ = MetricRollup.objects.filter(
                resolution=Resolution.MINUTE, bucket_start__gte=hour, bucket_start__lt=hour + _HOUR
            ).delete()
            summary.minutes_deleted += deleted
    hour_cutoff = floor_hour(now - timedelta(days=settings.TELEMETRY_HOUR_RETENTION_DAYS))
    # In small batches, like every prune (workloads/services/pruning.py): no long-held locks.
    summary.hours_deleted = delete_in_batches(
        MetricRollup.objects.filter(resolution=Resolution.HOUR, bucket_start__lt=hour_cutoff),
        batch_size=settings.PRUNE_BATCH_SIZE,
    )
    summary.poll_runs_deleted = delete_in_batches(
        PollRun.objects.filter(started_at__lt=now - timedelta(days=settings.TELEMETRY_POLL_RUN_RETENTION_DAYS)),
        batch_size=settings.PRUNE_BATCH_SIZE,
    )
    summary.alerts_deleted = delete_in_batches(
        SloAlert.objects.filter(resolved_at__lt=hour_cutoff), batch_size=settings.PRUNE_BATCH_SIZE
    )
    return summary


# --- SLOs, error budgets and burn-rate alerts --------------------------------------------------------------
def slo_good_events_recompute(*, workload_class_id: int, thresholds: Thresholds) -> int:
    """Re-judge every rollup of a class against new SLO thresholds (an SLO was added, changed or
    removed), from the histograms and queue ages the rows keep, and record the thresholds."""
    changed = []
    rows = MetricRollup.objects.filter(workload_class_id=workload_class_id).values_list(
        "pk", "resolution", "oldest_unacked_age_seconds", "queue_ages", "latency_buckets"
    )
    for pk, resolution, age, ages, latency in rows.iterator(chunk_size=2000):
        if resolution == Resolution.HOUR:
            good_minutes = (
                slo_math.queue_age_hour_events(ages, thresholds.queue_age).good if thresholds.queue_age else 0
            )
        else:
            good_minutes = _queue_age_good(age, thresholds.queue_age)
        changed.append(
            MetricRollup(
                pk=pk, queue_age_good=int(good_minutes), latency_good=_latency_good(latency, thresholds.latency)
            )
        )
    MetricRollup.objects.bulk_update(changed, ["queue_age_good", "latency_good"], batch_size=500)
    ClassTelemetry.objects.filter(workload_class_id=workload_class_id).update(
        queue_age_threshold_seconds=thresholds.queue_age, latency_threshold_seconds=thresholds.latency
    )
    return len(changed)


def _slo_thresholds_sync() -> list[int]:
    current = slo_thresholds()
    stale = [
        (state.workload_class_id, current.get(state.workload_class_id, Thresholds()))
        for state in ClassTelemetry.objects.only(
            "workload_class_id", "queue_age_threshold_seconds", "latency_threshold_seconds"
        )
        if Thresholds(state.queue_age_threshold_seconds, state.latency_threshold_seconds)
        != current.get(state.workload_class_id, Thresholds())
    ]
    for class_id, thresholds in stale:
        with transaction.atomic():
            count = slo_good_events_recompute(workload_class_id=class_id, thresholds=thresholds)
        logger.info("SLO thresholds of class %s changed: re-judged %d rollups", class_id, count)
    return [class_id for class_id, _ in stale]


_EVENT_COLUMNS = ("completed", "failed", "latency_good", "latency_count", "queue_age_good", "queue_age_minutes")


def _dead_lettered_work(*, class_ids: list[int], starts: dict[str, datetime], end: datetime) -> dict[int, dict]:
    """Units of work whose final outcome is dead-lettered, per class and window: rows of the
    dead-letter mirror last seen in [start, end). A replay that failed again is the same row, so
    the work counts once, at its last failure; a replayed row not back (yet) is not a failure, its
    completion counts as good. Pub/Sub's own forwards (a worker that crashed) count too."""
    rows = DeadLetter.objects.filter(
        workload_class_id__in=class_ids, last_seen__gte=min(starts.values()), last_seen__lt=end
    ).exclude(status=DeadLetterStatus.REPLAYED)
    aggregates = {
        f"{window}_dead_lettered": Count("pk", filter=Q(last_seen__gte=start)) for window, start in starts.items()
    }
    return {row["workload_class_id"]: row for row in rows.order_by().values("workload_class_id").annotate(**aggregates)}


def slo_events(slo: Slo, sums: dict, window: str) -> slo_math.Events:
    """Good and total events of an SLO in one window, from the per-class sums of the rollups."""

    def total(column: str) -> float:
        return sums.get(f"{window}_{column}") or 0

    if slo.kind == SloKind.SUCCESS_RATIO:
        return slo_math.success_events(total("completed"), total("dead_lettered"))
    if slo.kind == SloKind.COMPLETION_LATENCY:
        return slo_math.Events(good=float(total("latency_good")), total=float(total("latency_count")))
    return slo_math.Events(good=float(total("queue_age_good")), total=float(total("queue_age_minutes")))


@dataclass
class EvaluationSummary:
    slos: int = 0
    opened: list[SloAlert] = field(default_factory=list)
    resolved: list[SloAlert] = field(default_factory=list)
    rejudged_classes: list[int] = field(default_factory=list)
    incidents: SyncSummary | None = None


def slo_alerts_evaluate(*, now: datetime) -> EvaluationSummary:
    """Recompute every SLO's status (attainment and budget over its window, burn rate per alert
    window) and open or resolve burn-rate alerts.

    One SQL query sums every window for every class: whole hours come from hourly rollups, the
    ragged edges from minute rollups, so the work grows with classes and hours, not with traffic."""
    summary = EvaluationSummary(rejudged_classes=_slo_thresholds_sync())
    slos = list(Slo.objects.select_related("workload_class").order_by("pk"))
    if not slos:
        with transaction.atomic():  # no SLO to judge, but dead letters may still be at risk
            summary.incidents = incidents_sync(now=now)
        return summary
    end = floor_minute(now)
    kept_since = minutes_kept_since(now)
    windows = {
        f"w{s}": window_spans(end - timedelta(seconds=s), end, minutes_kept_since=kept_since)
        for s in slo_math.ALERT_WINDOWS
    }
    windows |= {
        f"d{days}": window_spans(end - timedelta(days=days), end, minutes_kept_since=kept_since)
        for days in {slo.window_days for slo in slos}
    }
    aggregates = {
        f"{window}_{column}": Sum(column, filter=spans_query(spans), default=0)
        for window, spans in windows.items()
        for column in _EVENT_COLUMNS
    }
    class_ids = sorted({slo.workload_class_id for slo in slos})
    sums = {
        row["workload_class_id"]: row
        for row in MetricRollup.objects.filter(
            spans_query({span for spans in windows.values() for span in spans}), workload_class_id__in=class_ids
        )
        .order_by()
        .values("workload_class_id")
        .annotate(**aggregates)
    }

    starts = {f"w{s}": end - timedelta(seconds=s) for s in slo_math.ALERT_WINDOWS}
    starts |= {f"d{days}": end - timedelta(days=days) for days in {slo.window_days for slo in slos}}
    for class_id, counts in _dead_lettered_work(class_ids=class_ids, starts=starts, end=end).items():
        sums[class_id] = {**sums.get(class_id, {}), **counts}

    open_alerts = {(a.slo_id, a.rule): a for a in SloAlert.objects.filter(resolved_at__isnull=True)}
    statuses, new_alerts, changed_alerts = [], [], []
    for slo in slos:
        class_sums = sums.get(slo.workload_class_id, {})
        budget = slo_math.budget_fraction(slo.target_percent)
        window_events = {s: slo_events(slo, class_sums, f"w{s}") for s in slo_math.ALERT_WINDOWS}
        status = slo_math.error_budget(
            slo_events(slo, class_sums, f"d{slo.window_days}"),
            budget=budget,
            window_seconds=slo.window_days * 86400,
            current_burn_rate=slo_math.burn_rate(window_events[3600], budget),
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
                guarded=[],
                attempt_failure_ratio=slo_math.attempt_failure_ratio(
                    class_sums.get(f"d{slo.window_days}_completed") or 0,
                    class_sums.get(f"d{slo.window_days}_failed") or 0,
                ),
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
            if alert is None and verdict.guarded and min(verdict.long_burn_rate, verdict.short_burn_rate) > rule.factor:
                # Burning fast enough to fire, held back by the low-traffic guard: say so.
                statuses[-1].guarded.append(
                    {
                        "rule": rule.name,
                        "severity": rule.severity,
                        "events": verdict.long_total,
                        "min_traffic": slo.min_traffic,
                        "window": slo_math.window_label(rule.long_window),
                        "burn_rate": verdict.short_burn_rate,
                    }
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
        # One incident per SLO, and its notifications, in the same transaction (the outbox).
        summary.incidents = incidents_sync(now=now)
    summary.slos = len(slos)
    summary.opened = new_alerts
    return summary
