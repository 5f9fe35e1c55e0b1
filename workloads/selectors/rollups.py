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
