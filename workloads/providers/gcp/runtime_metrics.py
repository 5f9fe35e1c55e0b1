"""The observed runtimes' own Cloud Monitoring metrics (Metrics.runtime_series on GCP).

A class on an observed runtime (workloads/runtimes.py) names what runs it in `runtime_resource`:
a Cloud Run service or job, a Cloud Functions function, `namespace/workload` on GKE, or a
Compute Engine instance group (its instances' name prefix). Each query below reads one Google
metric type on one monitored-resource type for every such class at once: the filter names all
their resources, `group_by_fields` keeps one series per resource (and per outcome label where
errors are told apart), and the series are summed back per class here. So a poll costs one
ListTimeSeries per metric type and resource type, whatever the number of classes.

Units follow Google's descriptors (tests/contract/fakes/google_descriptors.json): request
latencies are in ms and function execution times in ns, both turned into seconds over the
shared LATENCY_BUCKET_BOUNDS; billable instance time and VM uptime are seconds per step; the
functions' instance count is a gauge, made instance-seconds by the step's length; GKE gives CPU
core-seconds used (counted as instance time of a one-vCPU instance: a lower bound of what the
nodes cost).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from google.api import distribution_pb2
from google.cloud import monitoring_v3

from workloads.providers.base import (
    Distribution,
    MetricTarget,
    Outcomes,
    Point,
    RuntimeMetric,
)
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.monitoring import (
    MAX_FILTER_CHARS,
    MIN_ALIGNMENT_SECONDS,
    StepEnds,
    bucket_bounds,
    label_clause,
    label_value,
    list_request,
    prefixes_clause,
    quote,
    read_series,
    regex_literal,
    to_distribution,
    utc,
)

logger = logging.getLogger(__name__)

Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer


@dataclass(frozen=True)
class RuntimeQuery:
    runtime: str  # workloads.runtimes.Runtime value
    metric: RuntimeMetric
    metric_type: str
    resource_type: str
    label: str  # the field that names the class's resource (filtered and grouped on)
    aligner: int
    reducer: int = Reducer.REDUCE_SUM
    outcome_label: str = ""  # OUTCOMES: the metric label that tells errors apart
    is_error: Callable[[str], bool] | None = None
    prefix: bool = False  # the resource is a name prefix (a MIG's instances), not a name
    namespace_label: str = ""  # GKE: the namespace half of `namespace/workload`
    seconds_per_unit: float = 1.0  # distributions: their unit in seconds
    gauge: bool = False  # INSTANCE_TIME from an instance-count gauge (x step seconds)


_SERVICE = "resource.labels.service_name"
_JOB = "resource.labels.job_name"
_FUNCTION = "resource.labels.function_name"
_POD = "resource.labels.pod_name"
_NAMESPACE = "resource.labels.namespace_name"
_INSTANCE = "metric.labels.instance_name"

RUNTIME_QUERIES: tuple[RuntimeQuery, ...] = (
    # Cloud Run service behind a push subscription: each push is a request; 4xx/5xx are nacks.
    RuntimeQuery(
        "cloud_run_service",
        RuntimeMetric.OUTCOMES,
        "run.googleapis.com/request_count",
        "cloud_run_revision",
        _SERVICE,
        Aligner.ALIGN_DELTA,
        outcome_label="metric.labels.response_code_class",
        is_error=lambda value: value in ("4xx", "5xx"),
    ),
    RuntimeQuery(
        "cloud_run_service",
        RuntimeMetric.LATENCY,
        "run.googleapis.com/request_latencies",
        "cloud_run_revision",
        _SERVICE,
        Aligner.ALIGN_DELTA,
        seconds_per_unit=1e-3,
    ),
    RuntimeQuery(
        "cloud_run_service",
        RuntimeMetric.INSTANCE_TIME,
        "run.googleapis.com/container/billable_instance_time",
        "cloud_run_revision",
        _SERVICE,
        Aligner.ALIGN_DELTA,
    ),
    # Cloud Run job: an execution succeeds or fails as a whole.
    RuntimeQuery(
        "cloud_run_job",
        RuntimeMetric.OUTCOMES,
        "run.googleapis.com/job/completed_execution_count",
        "cloud_run_job",
        _JOB,
        Aligner.ALIGN_DELTA,
        outcome_label="metric.labels.result",
        is_error=lambda value: value == "failed",
    ),
    RuntimeQuery(
        "cloud_run_job",
        RuntimeMetric.INSTANCE_TIME,
        "run.googleapis.com/container/billable_instance_time",
        "cloud_run_job",
        _JOB,
        Aligner.ALIGN_DELTA,
    ),
    # Cloud Functions (1st gen; 2nd gen functions are Cloud Run services and report as such).
    RuntimeQuery(
        "cloud_functions",
        RuntimeMetric.OUTCOMES,
        "cloudfunctions.googleapis.com/function/execution_count",
        "cloud_function",
        _FUNCTION,
        Aligner.ALIGN_DELTA,
        outcome_label="metric.labels.status",
        is_error=lambda value: value != "ok",
    ),
    RuntimeQuery(
        "cloud_functions",
        RuntimeMetric.LATENCY,
        "cloudfunctions.googleapis.com/function/execution_times",
        "cloud_function",
        _FUNCTION,
        Aligner.ALIGN_DELTA,
        seconds_per_unit=1e-9,
    ),
    RuntimeQuery(
        "cloud_functions",
        RuntimeMetric.INSTANCE_TIME,
        "cloudfunctions.googleapis.com/function/instance_count",
        "cloud_function",
        _FUNCTION,
        Aligner.ALIGN_MEAN,  # over the `state` label (active / idle), summed
        gauge=True,
    ),
    # GKE: the workload's pods are named after it (`<workload>-<hash>...`).
    RuntimeQuery(
        "gke",
        RuntimeMetric.INSTANCE_TIME,
        "kubernetes.io/container/cpu/core_usage_time",
        "k8s_container",
        _POD,
        Aligner.ALIGN_DELTA,
        prefix=True,
        namespace_label=_NAMESPACE,
    ),
    # Compute Engine: a managed instance group names its instances `<group>-<suffix>`.
    RuntimeQuery(
        "compute_engine",
        RuntimeMetric.INSTANCE_TIME,
        "compute.googleapis.com/instance/uptime",
        "gce_instance",
        _INSTANCE,
        Aligner.ALIGN_DELTA,
        prefix=True,
    ),
)


def queries_for(metric: RuntimeMetric, runtimes: set[str]) -> list[RuntimeQuery]:
    return [q for q in RUNTIME_QUERIES if q.metric == metric and q.runtime in runtimes]


def resource_key(query: RuntimeQuery, target: MetricTarget) -> tuple[str, str] | None:
    """(namespace, name or prefix) that the class's series carry, or None when it names none."""
    resource = target.runtime_resource.strip()
    if not resource:
        return None
    if query.namespace_label:
        namespace, _, workload = resource.partition("/")
        return (namespace, workload) if namespace and workload else None
    return ("", resource.rsplit("/", 1)[-1])


def build_runtime_filter(query: RuntimeQuery, keys: Sequence[tuple[str, str]]) -> str:
    base = f'metric.type = "{query.metric_type}" AND resource.type = "{query.resource_type}"'
    clauses = [base]
    if query.namespace_label:
        namespaces = sorted({namespace for namespace, _ in keys})
        clauses.append(f"{query.namespace_label} = one_of({', '.join(quote(n) for n in namespaces)})")
    names = sorted({name for _, name in keys})
    if query.prefix:
        clause = _prefix_clause(query.label, names, budget=MAX_FILTER_CHARS - len(" AND ".join(clauses)) - 5)
        if clause:
            clauses.append(clause)
    else:
        clause = label_clause(query.label, names, budget=MAX_FILTER_CHARS - len(" AND ".join(clauses)) - 5)
        if clause:
            clauses.append(clause)
    return " AND ".join(clauses)


def _prefix_clause(field: str, names: Sequence[str], *, budget: int) -> str:
    """`<name>-...`: a group's instances or a workload's pods, never another name that merely
    starts the same way. Too long for the filter: the names' shortest shared prefixes that fit;
    else nothing. Either way the series are matched to their classes again after the read."""
    clause = f'{field} = monitoring.regex.full_match("({"|".join(regex_literal(n) for n in names)})-.*")'
    if len(clause) <= budget:
        return clause
    return prefixes_clause(field, names, budget=budget)


def _owners(query: RuntimeQuery, by_key: dict[tuple[str, str], list[str]], namespace: str, name: str) -> list[str]:
    if not query.prefix:
        return by_key.get(("", name), [])
    # The classes whose `<prefix>-` starts the name: looked up at each "-" of the name, so the
    # cost follows the name's length, not the number of classes.
    found = []
    for index, char in enumerate(name):
        if char == "-":
            found.extend(by_key.get((namespace, name[:index]), ()))
    return found


def read_runtime_series(
    client: monitoring_v3.MetricServiceClient,
    *,
    scope: str,
    metric: RuntimeMetric,
    targets: Sequence[MetricTarget],
    start: datetime,
    end: datetime,
    step_seconds: int,
    backoff: Backoff,
    timeout: float,
) -> dict[str, list[Point]]:
    step = max(MIN_ALIGNMENT_SECONDS, int(step_seconds))
    end_seconds = int(utc(end).timestamp()) // step * step
    start_seconds = int(utc(start).timestamp())
    if end_seconds <= start_seconds:
        return {}
    totals: dict[str, dict[datetime, object]] = {}
    ends = StepEnds(step)
    for query in queries_for(RuntimeMetric(metric), {t.runtime for t in targets}):
        by_key: dict[tuple[str, str], list[str]] = {}
        for target in targets:
            key = resource_key(query, target) if target.runtime == query.runtime else None
            if key is not None:
                by_key.setdefault(key, []).append(target.slug)
        if not by_key:
            continue
        group_by = [query.label] + [field for field in (query.namespace_label, query.outcome_label) if field]
        request = list_request(
            scope,
            build_runtime_filter(query, sorted(by_key)),
            start_seconds=start_seconds,
            end_seconds=end_seconds,
            step=step,
            aligner=query.aligner,
            reducer=query.reducer,
            group_by=group_by,
        )
        found = read_series(client, request, metric_type=query.metric_type, backoff=backoff, timeout=timeout)
        for series in found:
            namespace = label_value(series, query.namespace_label) if query.namespace_label else ""
            owners = _owners(query, by_key, namespace, label_value(series, query.label))
            if not owners:
                continue  # matched only the looser fallback filter
            failed = bool(query.is_error and query.is_error(label_value(series, query.outcome_label)))
            for point in series.points:
                moment = ends[point.interval.end_time.seconds]
                value = _value(query, point.value, failed=failed, step=step)
                for slug in owners:
                    cells = totals.setdefault(slug, {})
                    cells[moment] = _add(cells.get(moment), value)
    return {
        slug: [Point(end=moment, value=value) for moment, value in sorted(cells.items())]
        for slug, cells in totals.items()
    }


def _value(query: RuntimeQuery, value, *, failed: bool, step: int):
    """`value`: a raw TypedValue protobuf."""
    if query.metric == RuntimeMetric.LATENCY:
        return to_distribution(_in_seconds(value.distribution_value, query.seconds_per_unit))
    which = value.WhichOneof("value")
    number = float(value.int64_value if which == "int64_value" else value.double_value)
    if query.metric == RuntimeMetric.OUTCOMES:
        return Outcomes(executions=number, errors=number if failed else 0.0)
    return number * step if query.gauge else number


def _in_seconds(proto: distribution_pb2.Distribution, seconds_per_unit: float) -> distribution_pb2.Distribution:
    """The distribution with its bucket bounds and mean in seconds (bucket counts unchanged)."""
    if seconds_per_unit == 1.0:
        return proto
    bounds = [bound * seconds_per_unit for bound in bucket_bounds(proto.bucket_options)]
    return distribution_pb2.Distribution(
        count=proto.count,
        mean=proto.mean * seconds_per_unit,
        bucket_options={"explicit_buckets": {"bounds": bounds}},
        bucket_counts=list(proto.bucket_counts),
    )


def _add(current, value):
    if current is None:
        return value
    if isinstance(value, Outcomes):
        return Outcomes(current.executions + value.executions, current.errors + value.errors)
    if isinstance(value, Distribution):
        counts = tuple(a + b for a, b in zip(current.bucket_counts, value.bucket_counts, strict=True))
        return Distribution(count=current.count + value.count, sum=current.sum + value.sum, bucket_counts=counts)
    return current + value
