"""Reading the metric rollups: which columns each metric fills, which minute rows still exist,
and the filter that selects the rows covering a set of time spans. Shared by the telemetry
services that write rollups and the selectors that read them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from workloads.domain.windows import Span, floor_hour
from workloads.providers.base import MetricKind

# The rollup's value columns, written once: every other list of them (the hourly fold, the live
# values, the counters, cost, the chart series) is built from these.
# Gauges: the newest sample is the live value; an hour keeps the maximum (instances: the mean).
GAUGE_COLUMNS: tuple[str, ...] = (
    "oldest_unacked_age_seconds",
    "backlog",
    "dead_letter_backlog",
    "dead_letter_oldest_age_seconds",
    "instances",
)
# Usage counters: summed over any period; running totals (ClassCounters) and cost are made of them.
USAGE_COLUMNS: tuple[str, ...] = ("instance_seconds", "completed", "failed", "records", "tokens")
# Queue-age SLO events: minutes with a sample, and those within the threshold; summed.
QUEUE_AGE_EVENT_COLUMNS: tuple[str, ...] = ("queue_age_minutes", "queue_age_good")
# Completion latency: a histogram (added bucket by bucket), its count and sum, and the completions
# within the latency SLO's threshold.
LATENCY_COLUMNS: tuple[str, ...] = ("latency_buckets", "latency_count", "latency_sum", "latency_good")
# An observed runtime's own metrics (executions, errors, a latency histogram); summed but the histogram.
RUNTIME_COLUMNS: tuple[str, ...] = (
    "executions",
    "execution_errors",
    "runtime_latency_buckets",
    "runtime_latency_count",
    "runtime_latency_sum",
)

# Which rollup columns each metric sets. A poll updates only the columns of metrics that answered,
# so one failing metric never blanks another's values.
METRIC_FIELDS: dict[MetricKind, tuple[str, ...]] = {
    MetricKind.OLDEST_UNACKED_AGE: ("oldest_unacked_age_seconds", "queue_age_minutes", "queue_age_good"),
    MetricKind.UNDELIVERED_MESSAGES: ("backlog",),
    MetricKind.DEAD_LETTER_BACKLOG: ("dead_letter_backlog",),
    MetricKind.DEAD_LETTER_OLDEST_AGE: ("dead_letter_oldest_age_seconds",),
    MetricKind.INSTANCE_COUNT: ("instances", "instance_seconds"),
    MetricKind.COMPLETION_LATENCY: ("latency_buckets", "latency_count", "latency_sum", "latency_good"),
    MetricKind.COMPLETED: ("completed",),
    MetricKind.FAILED: ("failed",),
    MetricKind.RECORDS: ("records",),
    MetricKind.TOKENS: ("tokens",),
}
POLLED_METRICS: tuple[MetricKind, ...] = tuple(METRIC_FIELDS)


def minutes_kept_since(now: datetime) -> datetime:
    """Minute rollups at or after this moment are guaranteed to exist (downsampling folds and
    deletes whole hours before it)."""
    return floor_hour(now - timedelta(days=settings.TELEMETRY_MINUTE_RETENTION_DAYS))


def spans_query(spans: Iterable[Span]) -> Q:
    """Rollup rows in any of the spans (each at its own resolution)."""
    query = Q(pk__in=[])
    for span in spans:
        query |= Q(resolution=span.resolution, bucket_start__gte=span.start, bucket_start__lt=span.end)
    return query
