"""A class's chart series: which series exist, the step and resolution a time range is drawn at,
and the points read from the rollups (bounded by the points shown, never by history)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from workloads.domain import histogram
from workloads.models import (
    MetricRollup,
    Resolution,
    WorkloadClass,
)
from workloads.models.telemetry import RESOLUTION_SECONDS
from workloads.selectors.rollups import GAUGE_COLUMNS, USAGE_COLUMNS, minutes_kept_since

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
