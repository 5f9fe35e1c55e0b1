"""The Metrics port on Cloud Monitoring (`monitoring_v3.MetricServiceClient`).

Reading: one `list_time_series` per metric for every class at once, per Cloud Monitoring scoping
project (a class's environment names it; its metrics scope covers the environment's projects, so
the call count grows with scoping projects, never with projects or classes). The filter names the
classes' subscriptions (or pools, or class labels), and `group_by_fields` on that label gives one
series per class; aligner and reducer follow the metric's kind (see QUERIES). Long target lists fall back from
`one_of(...)` to a regex over shared prefixes that fits the filter limit; series of other resources
that the looser filter lets through are dropped here.

Writing: the worker kit's counters and latency histogram are custom metrics under
`custom.googleapis.com/controlplane/`, one GAUGE point per worker report holding that report's
interval (custom metrics cannot be DELTA), labelled `class` and a bounded `instance_id` slot.
GAUGE rather than CUMULATIVE keeps the writer stateless (no running totals or start times to keep
across restarts), and reading them back with ALIGN_SUM + REDUCE_SUM gives the per-step total over
all instances, histograms included. The metric and resource types and label names are Google's
published descriptors; tests/contract/fakes/google_descriptors.json holds them for the tests.
"""

from __future__ import annotations

import bisect
import logging
import math
import operator
import socket
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.api import distribution_pb2, metric_pb2
from google.cloud import monitoring_v3
from google.protobuf import duration_pb2, timestamp_pb2

from workloads.providers.base import (
    LATENCY_BUCKET_BOUNDS,
    Distribution,
    MetricKind,
    Metrics,
    MetricTarget,
    Point,
    ProviderError,
    RuntimeMetric,
    WorkerReport,
)
from workloads.providers.gcp.errors import (
    DEFAULT_BACKOFF,
    MONITORING_READ_ROLE,
    MONITORING_WRITE_ROLE,
    Backoff,
    call_with_retry,
)

logger = logging.getLogger(__name__)

Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer

CUSTOM_PREFIX = "custom.googleapis.com/controlplane/"
CUSTOM_RESOURCE = "global"
MAX_SERIES_PER_WRITE = 200  # CreateTimeSeries limit
# Conservative: the documented limit for Monitoring filters in alerting is 2048 characters.
MAX_FILTER_CHARS = 2048
MIN_ALIGNMENT_SECONDS = 60


def _short(resource: str) -> str:
    return resource.rsplit("/", 1)[-1] if resource else ""


@dataclass(frozen=True)
class Query:
    metric_type: str
    resource_type: str
    label: str  # the field filtered and grouped on
    key: Callable[[MetricTarget], str]  # that field's value for a class
    aligner: int
    reducer: int


_SUBSCRIPTION = "resource.labels.subscription_id"
_POOL = "resource.labels.worker_pool_name"
_CLASS = "metric.labels.class"
QUERIES: dict[MetricKind, Query] = {
    MetricKind.OLDEST_UNACKED_AGE: Query(
        "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
        "pubsub_subscription",
        _SUBSCRIPTION,
        lambda t: _short(t.subscription),
        Aligner.ALIGN_MAX,
        Reducer.REDUCE_MAX,
    ),
    MetricKind.UNDELIVERED_MESSAGES: Query(
        "pubsub.googleapis.com/subscription/num_undelivered_messages",
        "pubsub_subscription",
        _SUBSCRIPTION,
        lambda t: _short(t.subscription),
        Aligner.ALIGN_MAX,
        Reducer.REDUCE_SUM,
    ),
    MetricKind.DEAD_LETTER_BACKLOG: Query(
        "pubsub.googleapis.com/subscription/num_undelivered_messages",
        "pubsub_subscription",
        _SUBSCRIPTION,
        lambda t: _short(t.dead_letter_subscription),
        Aligner.ALIGN_MAX,
        Reducer.REDUCE_SUM,
    ),
    MetricKind.DEAD_LETTER_OLDEST_AGE: Query(
        "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
        "pubsub_subscription",
        _SUBSCRIPTION,
        lambda t: _short(t.dead_letter_subscription),
        Aligner.ALIGN_MAX,
        Reducer.REDUCE_MAX,
    ),
    MetricKind.INSTANCE_COUNT: Query(
        "run.googleapis.com/container/instance_count",
        "cloud_run_worker_pool",
        _POOL,
        lambda t: _short(t.worker_pool),
        Aligner.ALIGN_MEAN,
        Reducer.REDUCE_SUM,  # over the `state` label (active / idle)
    ),
    **{
        kind: Query(
            CUSTOM_PREFIX + kind.value,
            CUSTOM_RESOURCE,
            _CLASS,
            lambda t: t.slug,
            Aligner.ALIGN_SUM,
            Reducer.REDUCE_SUM,
        )
        for kind in (
            MetricKind.COMPLETION_LATENCY,
            MetricKind.COMPLETED,
            MetricKind.FAILED,
            MetricKind.RECORDS,
            MetricKind.TOKENS,
        )
    },
}


class CloudMonitoringMetrics(Metrics):
    def __init__(
        self,
        client: monitoring_v3.MetricServiceClient,
        *,
        project: str,
        backoff: Backoff = DEFAULT_BACKOFF,
        timeout: float = 30.0,
        instance_slots: int = 64,
    ):
        self._client = client
        self._project = project
        self._instance_slots = instance_slots
        self._backoff = backoff
        self._timeout = timeout

    @property
    def _scope(self) -> str:
        return f"projects/{self._project}"

    # --- reading -------------------------------------------------------------------------------------
    def series(
        self,
        metric: MetricKind,
        targets: Sequence[MetricTarget],
        *,
        start: datetime,
        end: datetime,
        step_seconds: int = 60,
    ) -> dict[str, list[Point]]:
        result: dict[str, list[Point]] = {}
        for scope, scoped in self._by_scope(targets):
            result.update(
                self._scoped_series(metric, scoped, scope=scope, start=start, end=end, step_seconds=step_seconds)
            )
        return result

    def _by_scope(self, targets: Sequence[MetricTarget]) -> list[tuple[str, list[MetricTarget]]]:
        """The targets grouped by the scoping project they are read through (each target's
        environment's, this adapter's own project by default), as (scope name, targets) in
        scope order: one call per metric type per scoping project."""
        by_project: dict[str, list[MetricTarget]] = {}
        for target in targets:
            by_project.setdefault(target.scope_project or self._project, []).append(target)
        return [(f"projects/{project}", scoped) for project, scoped in sorted(by_project.items())]

    def _scoped_series(
        self,
        metric: MetricKind,
        targets: Sequence[MetricTarget],
        *,
        scope: str,
        start: datetime,
        end: datetime,
        step_seconds: int,
    ) -> dict[str, list[Point]]:
        """One list_time_series through one scoping project, filtered to these targets' resources."""
        query = QUERIES[MetricKind(metric)]
        slugs_by_value: dict[str, list[str]] = {}
        for target in targets:
            value = query.key(target)
            if value:
                slugs_by_value.setdefault(value, []).append(target.slug)
        if not slugs_by_value:
            return {}
        step = max(MIN_ALIGNMENT_SECONDS, int(step_seconds))
        # Monitoring aligns steps backwards from the interval's end: an end on a step boundary
        # makes every point's end a boundary too.
        end_seconds = int(utc(end).timestamp()) // step * step
        start_seconds = int(utc(start).timestamp())
        if end_seconds <= start_seconds:
            return {}
        request = list_request(
            scope,
            build_filter(query, sorted(slugs_by_value)),
            start_seconds=start_seconds,
            end_seconds=end_seconds,
            step=step,
            aligner=query.aligner,
            reducer=query.reducer,
            group_by=[query.label],
        )
        found = read_series(
            self._client, request, metric_type=query.metric_type, backoff=self._backoff, timeout=self._timeout
        )
        result: dict[str, list[Point]] = {}
        ends = StepEnds(step)
        for series in found:
            slugs = slugs_by_value.get(label_value(series, query.label))
            if not slugs:
                continue  # it only matched the looser fallback filter
            points = [
                Point(end=ends[point.interval.end_time.seconds], value=_point_value(point.value, metric))
                for point in series.points
            ]
            for slug in slugs:
                result.setdefault(slug, []).extend(points)
        for points in result.values():
            points.sort(key=_END)  # Monitoring returns newest first
        return result

    def runtime_series(
        self,
        metric: RuntimeMetric,
        targets: Sequence[MetricTarget],
        *,
        start: datetime,
        end: datetime,
        step_seconds: int = 60,
    ) -> dict[str, list[Point]]:
        # Imported here: that module builds on this one's filters and conversions.
        from workloads.providers.gcp.runtime_metrics import read_runtime_series

        # As series(): a runtime's resources live in its environment's projects.
        result: dict[str, list[Point]] = {}
        for scope, scoped in self._by_scope(targets):
            result.update(
                read_runtime_series(
                    self._client,
                    scope=scope,
                    metric=metric,
                    targets=scoped,
                    start=start,
                    end=end,
                    step_seconds=step_seconds,
                    backoff=self._backoff,
                    timeout=self._timeout,
                )
            )
        return result

    # --- writing ---------------------------------------------------------------------------------------
    def write_worker_report(self, report: WorkerReport) -> None:
        self.write_worker_reports([report])

    def write_worker_reports(self, reports: Sequence[WorkerReport]) -> None:
        """Write many reports in as few CreateTimeSeries requests as the API allows: at most 200
        series per request, and one point per series per request."""
        series = [item for report in sorted(reports, key=lambda r: r.interval_end) for item in self._as_series(report)]
        for batch in _write_batches(series):
            call_with_retry(
                lambda batch=batch: self._client.create_time_series(
                    name=self._scope, time_series=batch, timeout=self._timeout, retry=None
                ),
                what="write worker metrics to",
                resource=self._scope,
                role=MONITORING_WRITE_ROLE,
                backoff=self._backoff,
            )

    def _as_series(self, report: WorkerReport) -> list[monitoring_v3.TimeSeries]:
        instance = instance_label(report.instance_id or socket.gethostname(), slots=self._instance_slots)
        labels = {"class": report.slug, "instance_id": instance}
        resource = {"type": CUSTOM_RESOURCE, "labels": {"project_id": self._project}}
        interval = {"end_time": timestamp_pb2.Timestamp(seconds=int(utc(report.interval_end).timestamp()))}
        series = [
            monitoring_v3.TimeSeries(
                metric={"type": CUSTOM_PREFIX + kind.value, "labels": labels},
                resource=resource,
                metric_kind=metric_pb2.MetricDescriptor.MetricKind.GAUGE,
                value_type=metric_pb2.MetricDescriptor.ValueType.INT64,
                unit="1",
                points=[{"interval": interval, "value": {"int64_value": int(value)}}],
            )
            for kind, value in (
                (MetricKind.COMPLETED, report.completed),
                (MetricKind.FAILED, report.failed),
                (MetricKind.RECORDS, report.records),
                (MetricKind.TOKENS, report.tokens),
            )
        ]
        latency = report.latency
        if latency.count:
            distribution = distribution_pb2.Distribution(
                count=latency.count,
                mean=latency.sum / latency.count,
                # The histogram does not carry the spread; 0 is valid and nothing reads it back.
                sum_of_squared_deviation=0.0,
                bucket_options={"explicit_buckets": {"bounds": list(latency.bounds)}},
                bucket_counts=list(latency.bucket_counts),
            )
            series.append(
                monitoring_v3.TimeSeries(
                    metric={"type": CUSTOM_PREFIX + MetricKind.COMPLETION_LATENCY.value, "labels": labels},
                    resource=resource,
                    metric_kind=metric_pb2.MetricDescriptor.MetricKind.GAUGE,
                    value_type=metric_pb2.MetricDescriptor.ValueType.DISTRIBUTION,
                    unit="s",
                    points=[{"interval": interval, "value": {"distribution_value": distribution}}],
                )
            )
        return series


def list_request(
    scope: str,
    filter_: str,
    *,
    start_seconds: int,
    end_seconds: int,
    step: int,
    aligner,
    reducer,
    group_by: list[str],
) -> monitoring_v3.ListTimeSeriesRequest:
    """One aligned, reduced ListTimeSeries over [start, end) in steps of `step` seconds, full points."""
    return monitoring_v3.ListTimeSeriesRequest(
        name=scope,
        filter=filter_,
        interval=monitoring_v3.TimeInterval(
            start_time=timestamp_pb2.Timestamp(seconds=start_seconds),
            end_time=timestamp_pb2.Timestamp(seconds=end_seconds),
        ),
        aggregation=monitoring_v3.Aggregation(
            alignment_period=duration_pb2.Duration(seconds=step),
            per_series_aligner=aligner,
            cross_series_reducer=reducer,
            group_by_fields=group_by,
        ),
        view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
    )


def read_series(
    client: monitoring_v3.MetricServiceClient,
    request: monitoring_v3.ListTimeSeriesRequest,
    *,
    metric_type: str,
    backoff: Backoff,
    timeout: float,
) -> list:
    """Every TimeSeries of a ListTimeSeries answer (call_with_retry's retries), or none while the
    metric type has no data in the request's scope yet (no_data_yet)."""
    try:
        return call_with_retry(
            lambda: list_series(client, request, timeout=timeout),
            what=f"read {metric_type} for",
            resource=request.name,
            role=MONITORING_READ_ROLE,
            backoff=backoff,
        )
    except ProviderError as exc:
        if not no_data_yet(exc):
            raise
        logger.debug("%s has no data in %s yet", metric_type, request.name)
        return []


def list_series(client: monitoring_v3.MetricServiceClient, request, *, timeout: float) -> list:
    """Every TimeSeries of a ListTimeSeries answer, all pages, as raw protobufs: reading each
    field through proto-plus's wrappers (one wrapper per series, point and value) cost more than
    the rest of a poll with 200 classes."""
    # retry=None: this method's default retries UNAVAILABLE for 90 s on its own (call_with_retry retries)
    pager = client.list_time_series(request=request, timeout=timeout, retry=None)
    return [series for page in pager.pages for series in monitoring_v3.ListTimeSeriesResponse.pb(page).time_series]


def instance_label(instance: str, *, slots: int) -> str:
    """The `instance_id` label of a worker's series: one of `slots` values, a stable hash of the
    worker's own id (hostname-pid), so the series stay bounded however often a pool's instances
    restart. Each instance still writes its own series, which the reads sum (ALIGN_SUM +
    REDUCE_SUM). Two live instances that share a slot share a series: their GAUGE points interleave
    and both count; a point Monitoring refuses as out of order is kept by the worker and written
    with its next report."""
    return f"slot-{zlib.crc32(instance.encode()) % slots:03d}"


def no_data_yet(exc: ProviderError) -> bool:
    """Monitoring's NOT_FOUND for a metric type without a descriptor in the project: a custom
    metric before any worker wrote a point (the first write creates the descriptor). That is "no
    data yet", on every new project and class, not a setting to fix."""
    detail = str(exc.__cause__ or exc).lower()
    return exc.code == "NOT_FOUND" and "cannot find metric(s) that match type" in detail


# --- filters -------------------------------------------------------------------------------------------
def build_filter(query: Query, values: Sequence[str], *, limit: int = MAX_FILTER_CHARS) -> str:
    base = f'metric.type = "{query.metric_type}" AND resource.type = "{query.resource_type}"'
    clause = label_clause(query.label, values, budget=limit - len(base) - len(" AND "))
    return f"{base} AND {clause}" if clause else base


def label_clause(field: str, values: Sequence[str], *, budget: int) -> str:
    """`field = one_of(...)` when it fits the budget; else a regex over the values' shortest shared
    prefixes that fits; else nothing (the caller drops what it did not ask for)."""
    values = sorted(set(values))
    exact = f"{field} = one_of({', '.join(quote(v) for v in values)})"
    if len(exact) <= budget:
        return exact
    return prefixes_clause(field, values, budget=budget)


def prefixes_clause(field: str, values: Sequence[str], *, budget: int) -> str:
    """A regex over the values' prefixes of the greatest length that fits the budget (the longer,
    the fewer other resources it lets through); "" when not even one character does. Shorter
    prefixes never make a longer clause (fewer of them, each no longer), so the length is
    bisected: a few clauses built instead of one per character of the longest value."""

    def clause(length: int) -> str:
        prefixes = sorted({value[:length] for value in values})
        return f'{field} = monitoring.regex.full_match("({"|".join(map(regex_literal, prefixes))}).*")'

    fits, too_long = 0, max(map(len, values)) + 1
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if len(clause(middle)) <= budget:
            fits = middle
        else:
            too_long = middle
    return clause(fits) if fits else ""


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def regex_literal(value: str) -> str:
    # Resource ids use letters, digits and - _ . ~ + %; a character class escapes the two RE2
    # metacharacters among them without backslashes (which would need escaping again in the filter).
    return value.replace(".", "[.]").replace("+", "[+]")


# --- conversions -----------------------------------------------------------------------------------------
def utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def label_value(series, label: str) -> str:
    """`series`: a raw TimeSeries protobuf."""
    kind, _, name = label.split(".", 2)
    labels = series.resource.labels if kind == "resource" else series.metric.labels
    return labels.get(name, "")


def step_end(seconds: int, step: int) -> datetime:
    return datetime.fromtimestamp(seconds // step * step, tz=UTC)


class StepEnds(dict):
    """step_end of a point's end seconds, made once per distinct end: an answer's points share
    the window's few step ends, whatever the number of series."""

    def __init__(self, step: int):
        super().__init__()
        self.step = step

    def __missing__(self, seconds: int) -> datetime:
        moment = self[seconds] = step_end(seconds, self.step)
        return moment


_END = operator.attrgetter("end")


def _point_value(value, metric: MetricKind) -> float | Distribution:
    """`value`: a raw TypedValue protobuf."""
    which = value.WhichOneof("value")
    if which == "distribution_value":
        distribution = to_distribution(value.distribution_value)
        return distribution if metric == MetricKind.COMPLETION_LATENCY else float(distribution.count)
    if which == "int64_value":
        return float(value.int64_value)
    if which == "double_value":
        return float(value.double_value)
    if which == "bool_value":
        return 1.0 if value.bool_value else 0.0
    return math.nan


def bucket_bounds(options: distribution_pb2.Distribution.BucketOptions) -> list[float]:
    which = options.WhichOneof("options")
    if which == "explicit_buckets":
        return list(options.explicit_buckets.bounds)
    if which == "exponential_buckets":
        spec = options.exponential_buckets
        return [spec.scale * spec.growth_factor**i for i in range(spec.num_finite_buckets + 1)]
    if which == "linear_buckets":
        spec = options.linear_buckets
        return [spec.offset + spec.width * i for i in range(spec.num_finite_buckets + 1)]
    return []


def to_distribution(proto: distribution_pb2.Distribution) -> Distribution:
    """A Monitoring distribution as the port's histogram over LATENCY_BUCKET_BOUNDS."""
    bounds = bucket_bounds(proto.bucket_options)
    counts = list(proto.bucket_counts)  # Monitoring may omit trailing empty buckets
    target = [0] * (len(LATENCY_BUCKET_BOUNDS) + 1)
    if tuple(bounds) == LATENCY_BUCKET_BOUNDS:
        kept = min(len(counts), len(target))
        target[:kept] = counts[:kept]  # int64 fields, read as ints
    else:
        # Different bounds: move each source bucket's count to the bucket holding its midpoint.
        for index, count in enumerate(counts):
            if not count:
                continue
            low = bounds[index - 1] if 0 < index <= len(bounds) else None
            high = bounds[index] if index < len(bounds) else None
            if low is None and high is None:
                position = bisect.bisect_right(LATENCY_BUCKET_BOUNDS, proto.mean)
            elif low is None:
                position = bisect.bisect_left(LATENCY_BUCKET_BOUNDS, high)
            elif high is None:
                position = bisect.bisect_right(LATENCY_BUCKET_BOUNDS, low)
            else:
                position = bisect.bisect_right(LATENCY_BUCKET_BOUNDS, (low + high) / 2)
            target[position] += int(count)
    return Distribution(count=int(proto.count), sum=proto.mean * proto.count, bucket_counts=tuple(target))


def _write_batches(series: list[monitoring_v3.TimeSeries]):
    """Split into requests of at most 200 series in which no series (metric + labels + resource)
    repeats, keeping the input (time) order so each series' points arrive oldest first."""
    batch: list[monitoring_v3.TimeSeries] = []
    keys: set = set()
    for item in series:
        key = (item.metric.type, tuple(sorted(item.metric.labels.items())), item.resource.type)
        if len(batch) >= MAX_SERIES_PER_WRITE or key in keys:
            yield batch
            batch, keys = [], set()
        batch.append(item)
        keys.add(key)
    if batch:
        yield batch
