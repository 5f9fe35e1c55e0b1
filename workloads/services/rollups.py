"""Hourly rollups and downsampling: fold a class's minute rollups into hourly rows (recomputed
from all their minutes, so a refold gives the same row), and, past the minute retention, fold and
delete the minutes an hour at a time; old hourly rows, poll runs and resolved alerts are pruned.
(Cost attribution and every other read of the rollups: workloads/selectors/.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

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


def minute_rows(*, start: datetime, end: datetime, class_ids: Iterable[int] | None = None) -> dict[int, list[dict]]:
    """Minute rollups in [start, end) as dicts, per class, oldest first."""
    minutes = MetricRollup.objects.filter(resolution=Resolution.MINUTE, bucket_start__gte=start, bucket_start__lt=end)
    if class_ids is not None:
        minutes = minutes.filter(workload_class_id__in=list(class_ids))
    rows: dict[int, list[dict]] = defaultdict(list)
    for row in minutes.order_by("workload_class_id", "bucket_start").values(*_FOLD_FIELDS).iterator(chunk_size=2000):
        rows[row["workload_class_id"]].append(row)
    return rows


def hourly_rollups_upsert(rows: dict[int, list[dict]], *, start: datetime, end: datetime) -> int:
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
            rows = minute_rows(start=hour, end=hour + _HOUR)
            summary.hours_folded += hourly_rollups_upsert(rows, start=hour, end=hour + _HOUR)
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
