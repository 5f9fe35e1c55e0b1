"""A fake Cloud Monitoring MetricService (ListTimeSeries, CreateTimeSeries) that the real
`monitoring_v3.MetricServiceClient` talks to over gRPC.

It keeps raw points (seeded by tests, or written through CreateTimeSeries) and answers
ListTimeSeries the way Monitoring does: NOT_FOUND "Cannot find metric(s) that match type" for a
custom metric no one has written yet (no descriptor); metric types, resource types and label names
must be in Google's published descriptors (google_descriptors.json), else INVALID_ARGUMENT; then it
parses the filter (one metric type; `=`, `one_of`,
`starts_with`, `monitoring.regex.full_match` on resource/metric labels), aligns each series into
periods that end at the interval's end, reduces across series grouped by `group_by_fields`, returns
points newest first and pages by points. Requests it cannot answer the way Monitoring would
(an aligner that does not fit the metric kind, a reducer without an aligner, an alignment period
under 60 s, a malformed filter) fail with INVALID_ARGUMENT. CreateTimeSeries enforces the write
rules: at most 200 series, one point each, no repeated series, points in order, no DELTA custom
metrics, GAUGE points without a distinct start time.
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.api import distribution_pb2, metric_pb2
from google.cloud import monitoring_v3
from google.protobuf import empty_pb2

from tests.contract.fakes.server import Faults

_u = grpc.unary_unary_rpc_method_handler
Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer
Kind = metric_pb2.MetricDescriptor.MetricKind
ValueType = metric_pb2.MetricDescriptor.ValueType
_TimeSeriesPb = monitoring_v3.TimeSeries.pb()
_ResponsePb = monitoring_v3.ListTimeSeriesResponse.pb()

# Google's published descriptors (google_descriptors.json): the metric types, kinds, labels and
# monitored resources Monitoring knows. Custom metric descriptors exist in a project only once a
# first point was written; until then a read answers NOT_FOUND, as Google does.
DESCRIPTORS = json.loads((Path(__file__).with_name("google_descriptors.json")).read_text())
METRICS: dict[str, dict] = DESCRIPTORS["metrics"]
RESOURCES: dict[str, list[str]] = DESCRIPTORS["monitored_resources"]
SYSTEM_METRICS = {
    name: (Kind.Value(d["kind"]), ValueType.Value(d["value_type"]))
    for name, d in METRICS.items()
    if not name.startswith("custom.googleapis.com/")
}


class Invalid(Exception):
    pass


def check_labels(metric_type: str, resource_type: str, metric_labels, resource_labels) -> None:
    """Refuse (Invalid) a metric or resource label, or a resource type, that Google's descriptors
    do not have: stricter than Monitoring (which may just match nothing), so a misspelt name fails
    a test instead of reading zeros."""
    descriptor = METRICS.get(metric_type)
    if descriptor is None:
        raise Invalid(f"No descriptor for metric type {metric_type!r} in google_descriptors.json.")
    if resource_type not in descriptor["resources"]:
        raise Invalid(
            "The supplied filter does not specify a valid combination of metric and monitored resource "
            f"descriptors: {metric_type} is not written for resource type {resource_type!r}."
        )
    unknown = set(metric_labels) - set(descriptor["labels"])
    if unknown:
        raise Invalid(f"Unknown metric label(s) {sorted(unknown)} for {metric_type}; it has {descriptor['labels']}.")
    unknown = set(resource_labels) - set(RESOURCES[resource_type])
    if unknown:
        raise Invalid(
            f"Unknown resource label(s) {sorted(unknown)} for {resource_type}; it has {RESOURCES[resource_type]}."
        )


class NoSuchMetric(Exception):
    """Google's answer for a metric type with no descriptor in the project: a custom metric no one
    has written yet (its descriptor is created by the first write)."""


@dataclass
class RawSeries:
    metric_type: str
    metric_labels: dict[str, str]
    resource_type: str
    resource_labels: dict[str, str]
    kind: int
    value_type: int
    points: list[tuple[float, object]] = field(default_factory=list)  # (end seconds, number | Distribution)

    def key(self):
        return (
            self.metric_type,
            tuple(sorted(self.metric_labels.items())),
            self.resource_type,
            tuple(sorted(self.resource_labels.items())),
        )


class FakeMonitoring:
    def __init__(self):
        self.faults = Faults()
        self._lock = threading.Lock()
        self.series: dict[tuple, RawSeries] = {}
        # The same series by metric type: a query reads only its own type's series, so its cost
        # follows the series it is about, not everything the fake holds.
        self._by_type: dict[str, list[RawSeries]] = {}
        self.list_requests: list[monitoring_v3.ListTimeSeriesRequest] = []
        self.create_requests: list[monitoring_v3.CreateTimeSeriesRequest] = []
        self.page_size: int | None = None  # force small pages (points per page)
        # CPU seconds the server threads spent answering ListTimeSeries: work Monitoring does on
        # Google's servers, which bench/polling.py tells apart from the product's own.
        self.list_cpu_seconds = 0.0

    def reset(self) -> None:
        with self._lock:
            self.series.clear()
            self._by_type.clear()
            self.list_requests.clear()
            self.create_requests.clear()
            self.page_size = None
            self.list_cpu_seconds = 0.0
        self.faults.reset()

    def fail_next(self, code: str, times: int = 1, *, method: str | None = None) -> None:
        self.faults.fail_next(code, times, method=method)

    @property
    def list_calls(self) -> int:
        return len(self.list_requests)

    def seed(
        self,
        metric_type: str,
        *,
        resource_type: str,
        resource_labels: dict[str, str],
        points: list[tuple[float, object]],
        metric_labels: dict[str, str] | None = None,
    ) -> None:
        """Add raw points (epoch seconds, value) to a series of a system metric."""
        kind, value_type = SYSTEM_METRICS[metric_type]
        check_labels(metric_type, resource_type, metric_labels or {}, resource_labels)
        raw = RawSeries(metric_type, dict(metric_labels or {}), resource_type, dict(resource_labels), kind, value_type)
        with self._lock:
            stored = self._stored(raw)
            stored.points.extend(points)
            stored.points.sort(key=lambda p: p[0])

    def _stored(self, raw: RawSeries) -> RawSeries:
        """The stored series with raw's key, `raw` itself when it is new (under the lock)."""
        stored = self.series.setdefault(raw.key(), raw)
        if stored is raw:
            self._by_type.setdefault(raw.metric_type, []).append(raw)
        return stored

    def handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        return (
            grpc.method_handlers_generic_handler(
                "google.monitoring.v3.MetricService",
                {
                    "ListTimeSeries": _u(
                        self._list,
                        monitoring_v3.ListTimeSeriesRequest.deserialize,
                        _ResponsePb.SerializeToString,  # a raw protobuf, see _query
                    ),
                    "CreateTimeSeries": _u(
                        self._create,
                        monitoring_v3.CreateTimeSeriesRequest.deserialize,
                        empty_pb2.Empty.SerializeToString,
                    ),
                },
            ),
        )

    # --- ListTimeSeries ---------------------------------------------------------------------------------
    def _list(self, request: monitoring_v3.ListTimeSeriesRequest, context):
        started = time.thread_time()
        try:
            return self._answer(request, context)
        finally:
            with self._lock:
                self.list_cpu_seconds += time.thread_time() - started

    def _answer(self, request: monitoring_v3.ListTimeSeriesRequest, context):
        self.list_requests.append(request)
        self.faults.check(context, "ListTimeSeries")
        try:
            with self._lock:
                output = self._query(request)
        except Invalid as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except NoSuchMetric as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        limit = min(filter(None, (request.page_size, self.page_size, 100_000)))
        offset = int(request.page_token or 0)
        page, points = [], 0
        for series in output[offset:]:
            if page and points + len(series.points) > limit:
                break
            page.append(series)
            points += len(series.points)
        following = offset + len(page)
        response = _ResponsePb(next_page_token=str(following) if following < len(output) else "")
        response.time_series.extend(page)
        return response

    def _query(self, request) -> list:
        """The answer's series as raw TimeSeries protobufs: built through proto-plus's wrappers, the
        fake's own work was most of a benchmarked poll's time (bench/polling.py), work that
        Monitoring does on Google's servers."""
        clauses = parse_filter(request.filter)
        metric_types = [value for key, (op, value) in clauses.items() if key == "metric.type" and op == "="]
        if len(metric_types) != 1:
            raise Invalid("The filter must specify exactly one metric.type.")
        if metric_types[0] not in METRICS:
            raise Invalid(f"No descriptor for metric type {metric_types[0]!r} in google_descriptors.json.")
        candidates = self._by_type.get(metric_types[0], [])
        if metric_types[0] not in SYSTEM_METRICS and not candidates:
            raise NoSuchMetric(f'Cannot find metric(s) that match type = "{metric_types[0]}".')
        _check_query(metric_types[0], clauses, request.aggregation.group_by_fields)
        end = request.interval.end_time.timestamp()
        start = request.interval.start_time.timestamp() if request.interval.start_time else end
        aggregation = request.aggregation
        # Plain ints: proto-plus enums compare through Python code, and these are used per point.
        aligner, reducer = int(aggregation.per_series_aligner), int(aggregation.cross_series_reducer)
        period = aggregation.alignment_period.total_seconds() if aggregation.alignment_period else 0
        if aligner != _ALIGN_NONE and period < 60:
            raise Invalid("The alignment period must be at least 60s when an aligner is given.")
        if reducer != _REDUCE_NONE and aligner == _ALIGN_NONE:
            raise Invalid("A cross-series reducer requires a per-series aligner.")
        matches = _matcher(clauses)
        matched = [raw for raw in candidates if matches(raw)]
        for raw in {(raw.kind, raw.value_type): raw for raw in matched}.values():  # one per kind
            _check_aligner(raw, aligner)
        aligned = [(raw, _align(raw, aligner, period, start, end)) for raw in matched]
        reduce = None if reducer == _REDUCE_NONE else functools.partial(_reduce, reducer=reducer)
        if reducer == _REDUCE_NONE:
            groups = {raw.key(): ([(raw, points)], raw.metric_labels, raw.resource_labels) for raw, points in aligned}
        else:
            groups = {}
            for raw, points in aligned:
                metric_labels, resource_labels = _group_labels(raw, aggregation.group_by_fields)
                key = (tuple(sorted(metric_labels.items())), tuple(sorted(resource_labels.items())))
                groups.setdefault(key, ([], metric_labels, resource_labels))[0].append((raw, points))
        output = []
        for key in sorted(groups, key=repr):
            members, metric_labels, resource_labels = groups[key]
            by_end: dict[float, list] = {}
            for _, points in members:
                for end_seconds, value in points.items():
                    by_end.setdefault(end_seconds, []).append(value)
            if not by_end:
                continue
            first = members[0][0]
            series = _TimeSeriesPb(metric_kind=first.kind, value_type=first.value_type)
            series.metric.type, series.resource.type = first.metric_type, first.resource_type
            series.metric.labels.update(metric_labels)
            series.resource.labels.update(resource_labels)
            for end_seconds in sorted(by_end, reverse=True):  # newest first, as Monitoring returns them
                values = by_end[end_seconds]
                point = series.points.add()
                point.interval.start_time.seconds = int(end_seconds - period)
                point.interval.end_time.seconds = int(end_seconds)
                _set_value(point.value, reduce(values) if reduce else values[0])
            output.append(series)
        return output

    # --- CreateTimeSeries -------------------------------------------------------------------------------
    def _create(self, request: monitoring_v3.CreateTimeSeriesRequest, context) -> empty_pb2.Empty:
        self.create_requests.append(request)
        self.faults.check(context, "CreateTimeSeries")
        try:
            with self._lock:
                self._write(request)
        except Invalid as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return empty_pb2.Empty()

    def _write(self, request) -> None:
        if len(request.time_series) > 200:
            raise Invalid("A request may write at most 200 time series.")
        pending, keys = [], set()
        for ts in request.time_series:
            if len(ts.points) != 1:
                raise Invalid("Each time series must have exactly one point.")
            if ts.metric_kind == Kind.DELTA and ts.metric.type.startswith("custom.googleapis.com/"):
                raise Invalid("Custom metrics cannot have kind DELTA.")
            point = ts.points[0]
            end = point.interval.end_time.timestamp()
            if (
                ts.metric_kind == Kind.GAUGE
                and point.interval.start_time
                and point.interval.start_time.timestamp() != end
            ):
                raise Invalid("A GAUGE point's start time must equal its end time.")
            check_labels(ts.metric.type, ts.resource.type, ts.metric.labels, ts.resource.labels)
            descriptor = METRICS[ts.metric.type]
            if (ts.metric_kind, ts.value_type) != (
                Kind.Value(descriptor["kind"]),
                ValueType.Value(descriptor["value_type"]),
            ):
                raise Invalid(f"Value type or kind of {ts.metric.type} does not match its descriptor.")
            if ts.unit and ts.unit != descriptor["unit"]:
                raise Invalid(
                    f"Unit {ts.unit!r} of {ts.metric.type} does not match its descriptor's {descriptor['unit']!r}."
                )
            raw = RawSeries(
                ts.metric.type,
                dict(ts.metric.labels),
                ts.resource.type,
                dict(ts.resource.labels),
                ts.metric_kind,
                ts.value_type,
            )
            if raw.key() in keys:
                raise Invalid("Field timeSeries had duplicate time series in one request.")
            keys.add(raw.key())
            stored = self.series.get(raw.key())
            if stored and stored.points and stored.points[-1][0] >= end:
                raise Invalid("Points must be written in order: a point is not newer than the series' latest point.")
            for other in self._by_type.get(raw.metric_type, [])[:1]:  # every series of a type agrees
                if (other.kind, other.value_type) != (raw.kind, raw.value_type):
                    raise Invalid(f"Value type or kind of {raw.metric_type} does not match its descriptor.")
            value = _untyped(point.value)
            if isinstance(value, distribution_pb2.Distribution):
                bounds = list(value.bucket_options.explicit_buckets.bounds)
                if len(value.bucket_counts) > len(bounds) + 1 or sum(value.bucket_counts) != value.count:
                    raise Invalid("Distribution bucket counts do not match its count or bounds.")
            pending.append((raw, end, value))
        for raw, end, value in pending:  # all or nothing, like the real API for a valid request
            self._stored(raw).points.append((end, value))


def _check_query(metric_type: str, clauses: dict, group_by_fields) -> None:
    resource_type = clauses.get("resource.type", ("=", ""))[1]
    descriptor = METRICS.get(metric_type, {"resources": [resource_type]})
    if resource_type and resource_type not in descriptor["resources"]:
        check_labels(metric_type, resource_type, {}, {})  # raises with Google's wording
    fields = [key for key in clauses if key.startswith(("resource.labels.", "metric.labels."))]
    fields += list(group_by_fields)
    metric_labels = [f.split(".", 2)[2] for f in fields if f.startswith("metric.labels.")]
    resource_labels = [f.split(".", 2)[2] for f in fields if f.startswith("resource.labels.")]
    if resource_type and metric_type in METRICS:
        check_labels(metric_type, resource_type, metric_labels, resource_labels)


# --- filter ---------------------------------------------------------------------------------------------
_LITERAL = r'"((?:[^"\\]|\\.)*)"'
_CLAUSE = re.compile(r"^\s*(metric\.type|resource\.type|project|(?:resource|metric)\.labels?\.\w+)\s*=\s*(.+?)\s*$")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_filter(text: str) -> dict[str, tuple[str, object]]:
    clauses = {}
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = _CLAUSE.match(part)
        if not match:
            raise Invalid(f"Could not parse filter clause: {part!r}")
        key, value = match.group(1).replace(".label.", ".labels."), match.group(2)
        if literal := re.fullmatch(_LITERAL, value):
            clauses[key] = ("=", _unquote(literal.group(1)))
        elif call := re.fullmatch(r"(one_of|starts_with|monitoring\.regex\.full_match)\((.*)\)", value):
            args = [_unquote(a) for a in re.findall(_LITERAL, call.group(2))]
            if not args:
                raise Invalid(f"{call.group(1)} needs at least one string argument")
            clauses[key] = (call.group(1), args)
        else:
            raise Invalid(f"Unsupported filter value: {value!r}")
    return clauses


def _field(raw: RawSeries, key: str) -> str:
    if key == "metric.type":
        return raw.metric_type
    if key == "resource.type":
        return raw.resource_type
    if key == "project":
        return raw.resource_labels.get("project_id", "")
    kind, _, name = key.split(".", 2)
    return (raw.resource_labels if kind == "resource" else raw.metric_labels).get(name, "")


def _matcher(clauses) -> Callable[[RawSeries], bool]:
    """A test of a series against the parsed filter, each clause prepared once per request (a set
    for one_of, a compiled pattern for a regex) rather than once per series."""
    checks: list[tuple[str, Callable[[str], bool]]] = []
    for key, (op, value) in clauses.items():
        if op == "=":
            checks.append((key, value.__eq__))
        elif op == "one_of":
            checks.append((key, frozenset(value).__contains__))
        elif op == "starts_with":
            checks.append((key, lambda actual, prefix=value[0]: actual.startswith(prefix)))
        else:  # monitoring.regex.full_match
            pattern = re.compile(value[0])
            checks.append((key, lambda actual, pattern=pattern: pattern.fullmatch(actual) is not None))
    return lambda raw: all(check(_field(raw, key)) for key, check in checks)


def _group_labels(raw: RawSeries, fields) -> tuple[dict, dict]:
    metric_labels, resource_labels = {}, {}
    for name in fields:
        kind, _, label = name.split(".", 2)
        if kind == "resource":
            resource_labels[label] = raw.resource_labels.get(label, "")
        elif kind == "metric":
            metric_labels[label] = raw.metric_labels.get(label, "")
        else:
            raise Invalid(f"Cannot group by {name}")
    return metric_labels, resource_labels


# --- alignment and reduction ---------------------------------------------------------------------------------
# Plain ints (an enum member's .value): proto-plus enums compare through Python code.
_ALIGN_NONE, _ALIGN_DELTA, _REDUCE_NONE = Aligner.ALIGN_NONE.value, Aligner.ALIGN_DELTA.value, Reducer.REDUCE_NONE.value
_NUMERIC_ALIGNERS = {
    Aligner.ALIGN_MAX,
    Aligner.ALIGN_MIN,
    Aligner.ALIGN_MEAN,
    Aligner.ALIGN_SUM,
    Aligner.ALIGN_COUNT,
    Aligner.ALIGN_DELTA,
}


def _check_aligner(raw: RawSeries, aligner) -> None:
    if raw.kind == Kind.GAUGE and aligner in (Aligner.ALIGN_DELTA, Aligner.ALIGN_RATE):
        raise Invalid(f"The aligner {Aligner(aligner).name} cannot be applied to GAUGE metric {raw.metric_type}.")
    if raw.kind == Kind.CUMULATIVE and aligner not in (Aligner.ALIGN_NONE, Aligner.ALIGN_DELTA):
        # Monitoring accepts more (ALIGN_RATE, ...); the fake implements what the adapters use.
        raise Invalid(f"The fake supports only ALIGN_DELTA on CUMULATIVE metrics, got {Aligner(aligner).name}.")
    if raw.value_type == ValueType.DISTRIBUTION and aligner not in (
        Aligner.ALIGN_NONE,
        Aligner.ALIGN_SUM,
        Aligner.ALIGN_DELTA,
    ):
        raise Invalid(f"The fake supports ALIGN_SUM and ALIGN_DELTA on distributions, not {Aligner(aligner).name}.")
    if raw.value_type != ValueType.DISTRIBUTION and aligner not in _NUMERIC_ALIGNERS | {Aligner.ALIGN_NONE}:
        raise Invalid(f"The fake does not implement {Aligner(aligner).name}.")


def _cumulative_deltas(points: list[tuple[float, object]]) -> list[tuple[float, object]]:
    """A CUMULATIVE series as the increase since its previous point (a drop is a restart: the
    count began again from zero), which ALIGN_DELTA then sums per period, as Monitoring does."""
    deltas, previous = [], None
    for t, value in points:
        deltas.append((t, value if previous is None or value < previous else value - previous))
        previous = value
    return deltas


def _align(raw: RawSeries, aligner: int, period: float, start: float, end: float) -> dict[float, object]:
    points = raw.points
    if raw.kind == Kind.CUMULATIVE and aligner == _ALIGN_DELTA:
        points = _cumulative_deltas(points)
    inside = [(t, v) for t, v in points if start < t <= end]
    if aligner == _ALIGN_NONE:
        return dict(inside)
    buckets: dict[float, list] = {}
    for t, v in inside:
        bucket_end = end - math.floor((end - t) / period) * period
        buckets.setdefault(bucket_end, []).append(v)
    aggregate = _ALIGNERS.get(aligner)
    if buckets and aggregate is None:
        raise Invalid(f"The fake does not implement {Aligner(aligner).name}.")
    return {bucket_end: aggregate(values) for bucket_end, values in buckets.items()}


def _reduce(values: list, *, reducer: int):
    if reducer not in _REDUCERS:
        raise Invalid(f"The fake does not implement {Reducer(reducer).name}.")
    return _REDUCERS[reducer](values)


def _mean(values: list) -> float:
    return float(sum(values)) / len(values)


def _sum(values: list):
    if not isinstance(values[0], distribution_pb2.Distribution):
        return sum(values)
    if len(values) == 1 and values[0].bucket_counts and values[0].bucket_counts[-1]:
        return values[0]  # nothing to add up, no trailing empty bucket to leave out
    options = values[0].bucket_options
    bounds = list(options.explicit_buckets.bounds)
    counts = [0] * (len(bounds) + 1)
    total = count = 0
    for value in values:
        if value.bucket_options != options:
            raise Invalid("The fake cannot merge distributions with different bucket bounds.")
        for index, bucket in enumerate(value.bucket_counts):
            counts[index] += bucket
        count += value.count
        total += value.mean * value.count
    while len(counts) > 1 and counts[-1] == 0:  # Monitoring leaves out trailing empty buckets
        counts.pop()
    return distribution_pb2.Distribution(
        count=count,
        mean=total / count if count else 0.0,
        bucket_options={"explicit_buckets": {"bounds": bounds}},
        bucket_counts=counts,
    )


_ALIGNERS = {  # per series and period; DELTA points (or CUMULATIVE increases) add up
    Aligner.ALIGN_SUM.value: _sum,
    Aligner.ALIGN_DELTA.value: _sum,
    Aligner.ALIGN_MAX.value: max,
    Aligner.ALIGN_MIN.value: min,
    Aligner.ALIGN_MEAN.value: _mean,
    Aligner.ALIGN_COUNT.value: len,
}
_REDUCERS = {  # across the series of a group
    Reducer.REDUCE_SUM.value: _sum,
    Reducer.REDUCE_MAX.value: max,
    Reducer.REDUCE_MIN.value: min,
    Reducer.REDUCE_MEAN.value: _mean,
    Reducer.REDUCE_COUNT.value: len,
}


def _set_value(typed, value) -> None:
    """Fill a raw TypedValue protobuf."""
    if isinstance(value, distribution_pb2.Distribution):
        typed.distribution_value.CopyFrom(value)
    elif isinstance(value, int):
        typed.int64_value = value
    else:
        typed.double_value = float(value)


def _untyped(value: monitoring_v3.TypedValue):
    which = monitoring_v3.TypedValue.pb(value).WhichOneof("value")
    if which == "distribution_value":
        copy = distribution_pb2.Distribution()
        copy.CopyFrom(value.distribution_value)
        return copy
    return getattr(value, which)
