"""Hourly rollups and downsampling: fold a class's minute rollups into hourly rows (recomputed
from all their minutes, so a refold gives the same row), and, past the minute retention, fold and
delete the minutes an hour at a time; old hourly rows, poll runs and resolved alerts are pruned.
(Cost attribution and every other read of the rollups: workloads/selectors/.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, transaction

from workloads.batch_delete import delete_in_batches
from workloads.domain import histogram
from workloads.domain.windows import floor_hour
from workloads.models import MetricRollup, PollRun, Resolution, SloAlert
from workloads.selectors.rollups import (
    GAUGE_COLUMNS,
    LATENCY_COLUMNS,
    QUEUE_AGE_EVENT_COLUMNS,
    RUNTIME_COLUMNS,
    USAGE_COLUMNS,
    minutes_kept_since,
)

_HOUR = timedelta(hours=1)
_ROLLUP_UNIQUE = ["workload_class", "resolution", "bucket_start"]

_FOLD_FIELDS = (
    "workload_class_id",
    "bucket_start",
    *GAUGE_COLUMNS,
    *USAGE_COLUMNS,
    *LATENCY_COLUMNS,
    *QUEUE_AGE_EVENT_COLUMNS,
    *RUNTIME_COLUMNS,
    "fetched_at",
    "newest_sample_age_seconds",
)
_SUMMED = (
    *USAGE_COLUMNS,
    *QUEUE_AGE_EVENT_COLUMNS,
    *(name for name in RUNTIME_COLUMNS if not name.endswith("_buckets")),
)
_HOURLY_UPDATE_FIELDS = [name for name in _FOLD_FIELDS if name not in ("workload_class_id", "bucket_start")] + [
    "queue_ages"
]


def fold_minutes(minutes: Iterable[dict]) -> dict:
    """One hour's values from its minute rows: maxima for ages and backlogs, the mean of instance
    samples, sums for counters, SLO events, instance-seconds and histograms, and the minutes'
    queue ages, sorted (so queue-age events can be recounted for a new threshold)."""
    gauges: dict[str, list] = {name: [] for name in GAUGE_COLUMNS}
    sums = dict.fromkeys(_SUMMED, 0)
    latency, runtime_latency = histogram.empty(), histogram.empty()
    latency_count, latency_sum, latency_good = 0, 0.0, 0.0
    fetched_at, newest_age = None, None
    for row in minutes:
        for key, values in gauges.items():
            if row[key] is not None:
                values.append(row[key])
        for key in _SUMMED:
            sums[key] += row[key]
        histogram.add_into(latency, row["latency_buckets"])
        histogram.add_into(runtime_latency, row["runtime_latency_buckets"])
        latency_count += row["latency_count"]
        latency_sum += row["latency_sum"]
        latency_good += row["latency_good"]
        if fetched_at is None or row["fetched_at"] > fetched_at:
            fetched_at = row["fetched_at"]
        if row["newest_sample_age_seconds"] is not None:
            newest_age = min(row["newest_sample_age_seconds"], newest_age if newest_age is not None else float("inf"))
    return {
        **{key: max(values) if values else None for key, values in gauges.items()},
        "instances": sum(instances) / len(instances) if (instances := gauges["instances"]) else None,
        **sums,
        "latency_buckets": latency if any(latency) else [],
        "latency_count": latency_count,
        "latency_sum": latency_sum,
        "latency_good": latency_good,
        "runtime_latency_buckets": runtime_latency if any(runtime_latency) else [],
        "queue_ages": sorted(gauges["oldest_unacked_age_seconds"]),
        "fetched_at": fetched_at,
        "newest_sample_age_seconds": newest_age,
    }


def minute_rows(
    *, start: datetime, end: datetime, class_ids: Iterable[int] | None = None, using: str = "default"
) -> dict[int, list[dict]]:
    """Minute rollups in [start, end) as dicts, per class, oldest first."""
    minutes = MetricRollup.objects.using(using).filter(
        resolution=Resolution.MINUTE, bucket_start__gte=start, bucket_start__lt=end
    )
    if class_ids is not None:
        minutes = minutes.filter(workload_class_id__in=list(class_ids))
    rows: dict[int, list[dict]] = defaultdict(list)
    for row in minutes.order_by("workload_class_id", "bucket_start").values(*_FOLD_FIELDS).iterator(chunk_size=2000):
        rows[row["workload_class_id"]].append(row)
    return rows


def hourly_rollups_upsert(
    rows: dict[int, list[dict]], *, start: datetime, end: datetime, using: str = "default"
) -> int:
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
    MetricRollup.objects.using(using).bulk_create(
        hourly, batch_size=500, update_conflicts=True, unique_fields=_ROLLUP_UNIQUE, update_fields=_HOURLY_UPDATE_FIELDS
    )
    return len(hourly)


def hourly_rollups_refold(
    *, start: datetime, end: datetime, class_ids: Iterable[int] | None = None, using: str = "default"
) -> int:
    """Recompute the hourly rows of [start, end) (whole hours) from their minutes and upsert them,
    for the classes in `class_ids` (all when None); returns how many hourly rows were written.
    On PostgreSQL one INSERT ... SELECT ... GROUP BY folds them where they are (reading 12,000
    minute rows into Python and folding them there cost seconds per poll); elsewhere (SQLite,
    `make run`) the minutes are read and folded by fold_minutes. Both write the same rows
    (tests/workloads/test_rollup_fold_sql.py)."""
    if connections[using].vendor != "postgresql":
        rows = minute_rows(start=start, end=end, class_ids=class_ids, using=using)
        return hourly_rollups_upsert(rows, start=start, end=end, using=using)
    sql, params = _hourly_fold_sql(start=start, end=end, class_ids=class_ids)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# fold_minutes in SQL, column by column. Float sums are ordered by minute, as fold_minutes adds
# them (float addition depends on the order); an ordered aggregate is also never run in parallel.
_FLOAT_SUMS = {"instance_seconds", "latency_sum", "latency_good", "runtime_latency_sum"}
_HISTOGRAMS = ("latency_buckets", "runtime_latency_buckets")


def _fold_column(name: str) -> str:
    if name == "instances":
        return "avg(m.instances ORDER BY m.bucket_start)"
    if name in GAUGE_COLUMNS:
        return f"max(m.{name})"
    if name in _FLOAT_SUMS:
        return f"sum(m.{name} ORDER BY m.bucket_start)"
    if name == "fetched_at":
        return "max(m.fetched_at)"
    if name == "newest_sample_age_seconds":
        return "min(m.newest_sample_age_seconds)"
    if name == "queue_ages":
        # Sorted, as JSON text Python's json.dumps would write for these floats (a whole number
        # keeps its ".0"), so the stored jsonb is the same as the Python fold's.
        age = "m.oldest_unacked_age_seconds"
        text = f"CASE WHEN {age}::text ~ '^-?[0-9]+$' THEN {age}::text || '.0' ELSE {age}::text END"
        return f"coalesce('[' || string_agg({text}, ', ' ORDER BY {age}) || ']', '[]')::jsonb"
    return f"sum(m.{name})::bigint"  # the integer counters and SLO events


def _minutes_sql(*, start: datetime, end: datetime, class_ids: Iterable[int] | None) -> tuple[str, list]:
    """FROM and WHERE of the minute rows of [start, end) (of `class_ids` when given), alias m."""
    sql = (
        f"FROM {MetricRollup._meta.db_table} m WHERE m.resolution = %s AND m.bucket_start >= %s AND m.bucket_start < %s"
    )
    params: list = [Resolution.MINUTE.value, start, end]
    if class_ids is not None:
        sql += " AND m.workload_class_id = ANY(%s)"
        params.append(sorted(set(class_ids)))
    return sql, params


def _bucket_sums(column: str, prefix: str) -> list[str]:
    """Aggregates: the sum of each bucket of the `column` histograms, named <prefix><index>. A
    histogram has histogram.BUCKETS counts or none ([]: its buckets are NULL, left out of the
    sums). One sum per bucket in the same GROUP BY, not the buckets unnested into rows and
    grouped again: that sorted half a million rows for 12,000 minutes."""
    return [f"sum((m.{column} ->> {i})::bigint)::bigint AS {prefix}{i}" for i in range(histogram.BUCKETS)]


def _bucket_array(prefix: str, *, jsonb: bool) -> str:
    """The sums of _bucket_sums as one jsonb (or bigint) array; '[]' (or NULL) when none is
    non-zero, as fold_minutes keeps [] for a histogram that adds up to nothing."""
    sums = ", ".join(f"coalesce({prefix}{i}, 0)" for i in range(histogram.BUCKETS))
    nonzero = " OR ".join(f"{prefix}{i} <> 0" for i in range(histogram.BUCKETS))
    array, empty = (f"jsonb_build_array({sums})", "'[]'::jsonb") if jsonb else (f"ARRAY[{sums}]", "NULL")
    return f"CASE WHEN {nonzero} THEN {array} ELSE {empty} END"


def _hourly_fold_sql(*, start: datetime, end: datetime, class_ids: Iterable[int] | None) -> tuple[str, list]:
    minutes, params = _minutes_sql(start=start, end=end, class_ids=class_ids)
    folded = [name for name in _HOURLY_UPDATE_FIELDS if name not in _HISTOGRAMS]
    columns = ["workload_class_id", "resolution", "bucket_start", *folded, *_HISTOGRAMS]
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in _HOURLY_UPDATE_FIELDS)
    aggregates = [f"{_fold_column(name)} AS {name}" for name in folded]
    aggregates += _bucket_sums("latency_buckets", "l") + _bucket_sums("runtime_latency_buckets", "r")
    histograms = [_bucket_array(prefix, jsonb=True) for prefix in ("l", "r")]
    sql = f"""
        INSERT INTO {MetricRollup._meta.db_table} ({", ".join(columns)})
        SELECT h.workload_class_id, %s, h.hour AT TIME ZONE 'UTC', {", ".join(f"h.{name}" for name in folded)},
               {", ".join(histograms)}
          FROM (SELECT m.workload_class_id, date_trunc('hour', m.bucket_start AT TIME ZONE 'UTC') AS hour,
                       {", ".join(aggregates)}
                {minutes} GROUP BY 1, 2) h
        ON CONFLICT (workload_class_id, resolution, bucket_start) DO UPDATE SET {updates}
    """
    return sql, [Resolution.HOUR.value, *params]


@dataclass
class LiveValues:
    """A class's live values over a span of minutes: each gauge's newest sample, the outcomes, and
    the completion-latency histogram (histogram.BUCKETS counts)."""

    gauges: dict[str, float] = field(default_factory=dict)
    completed: int = 0
    failed: int = 0
    latency: list[int] = field(default_factory=histogram.empty)


def live_values_of(rows: dict[int, list[dict]]) -> dict[int, LiveValues]:
    """LiveValues from minute rows (minute_rows: per class, oldest first)."""
    live: dict[int, LiveValues] = {}
    for class_id, class_rows in rows.items():
        values = live[class_id] = LiveValues()
        for row in class_rows:  # oldest first: a gauge's last sample wins
            values.gauges.update({name: row[name] for name in GAUGE_COLUMNS if row[name] is not None})
            histogram.add_into(values.latency, row["latency_buckets"])
            values.completed += row["completed"]
            values.failed += row["failed"]
    return live


def live_values(
    *, start: datetime, end: datetime, class_ids: Iterable[int], using: str = "default"
) -> dict[int, LiveValues]:
    """Per class with minute rows in [start, end): its LiveValues. One aggregate query on
    PostgreSQL; the minutes read and added up in Python elsewhere (the same values:
    tests/workloads/test_rollup_fold_sql.py)."""
    if connections[using].vendor != "postgresql":
        return live_values_of(minute_rows(start=start, end=end, class_ids=class_ids, using=using))
    minutes, params = _minutes_sql(start=start, end=end, class_ids=class_ids)
    # Each gauge's newest sample: the first non-NULL one, newest first.
    newest = ", ".join(
        f"(array_agg(m.{name} ORDER BY m.bucket_start DESC) FILTER (WHERE m.{name} IS NOT NULL))[1] AS {name}"
        for name in GAUGE_COLUMNS
    )
    sql = f"""
        SELECT workload_class_id, {", ".join(GAUGE_COLUMNS)}, completed, failed,
               {_bucket_array("l", jsonb=False)}
          FROM (SELECT m.workload_class_id, {newest},
                       sum(m.completed)::bigint AS completed, sum(m.failed)::bigint AS failed,
                       {", ".join(_bucket_sums("latency_buckets", "l"))}
                {minutes} GROUP BY 1) live
    """
    live = {}
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        for class_id, *gauges, completed, failed, counts in cursor.fetchall():
            live[class_id] = LiveValues(
                gauges={name: value for name, value in zip(GAUGE_COLUMNS, gauges, strict=True) if value is not None},
                completed=completed,
                failed=failed,
                latency=counts or histogram.empty(),
            )
    return live


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
            summary.hours_folded += hourly_rollups_refold(start=hour, end=hour + _HOUR)
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
