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

import json
import math
import re
import threading
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
        self.list_requests: list[monitoring_v3.ListTimeSeriesRequest] = []
        self.create_requests: list[monitoring_v3.CreateTimeSeriesRequest] = []
        self.page_size: int | None = None  # force small pages (points per page)

    def reset(self) -> None:
        with self._lock:
            self.series.clear()
            self.list_requests.clear()
            self.create_requests.clear()
            self.page_size = None
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
            stored = self.series.setdefault(raw.key(), raw)
            stored.points.extend(points)
            stored.points.sort(key=lambda p: p[0])

    def handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        return (
            grpc.method_handlers_generic_handler(
                "google.monitoring.v3.MetricService",
                {
                    "ListTimeSeries": _u(
                        self._list,
                        monitoring_v3.ListTimeSeriesRequest.deserialize,
                        monitoring_v3.ListTimeSeriesResponse.serialize,
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
    def _list(self, request: monitoring_v3.ListTimeSeriesRequest, context) -> monitoring_v3.ListTimeSeriesResponse:
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
        return monitoring_v3.ListTimeSeriesResponse(
            time_series=page, next_page_token=str(following) if following < len(output) else ""
        )

    def _query(self, request) -> list[monitoring_v3.TimeSeries]:
        clauses = parse_filter(request.filter)
        metric_types = [value for key, (op, value) in clauses.items() if key == "metric.type" and op == "="]
        if len(metric_types) != 1:
            raise Invalid("The filter must specify exactly one metric.type.")
        if metric_types[0] not in METRICS:
            raise Invalid(f"No descriptor for metric type {metric_types[0]!r} in google_descriptors.json.")
        if metric_types[0] not in SYSTEM_METRICS and not any(
            raw.metric_type == metric_types[0] for raw in self.series.values()
        ):
            raise NoSuchMetric(f'Cannot find metric(s) that match type = "{metric_types[0]}".')
        _check_query(metric_types[0], clauses, request.aggregation.group_by_fields)
        end = request.interval.end_time.timestamp()
        start = request.interval.start_time.timestamp() if request.interval.start_time else end
        aggregation = request.aggregation
        aligner, reducer = aggregation.per_series_aligner, aggregation.cross_series_reducer
        period = aggregation.alignment_period.total_seconds() if aggregation.alignment_period else 0
        if aligner != Aligner.ALIGN_NONE and period < 60:
            raise Invalid("The alignment period must be at least 60s when an aligner is given.")
        if reducer != Reducer.REDUCE_NONE and aligner == Aligner.ALIGN_NONE:
            raise Invalid("A cross-series reducer requires a per-series aligner.")
        matched = [raw for raw in self.series.values() if _matches(raw, clauses)]
        for raw in matched:
            _check_aligner(raw, aligner)
        aligned = [(raw, _align(raw, aligner, period, start, end)) for raw in matched]
        if reducer == Reducer.REDUCE_NONE:
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
            series = monitoring_v3.TimeSeries(
                metric={"type": first.metric_type, "labels": metric_labels},
                resource={"type": first.resource_type, "labels": resource_labels},
                metric_kind=first.kind,
                value_type=first.value_type,
            )
            for end_seconds in sorted(by_end, reverse=True):  # newest first, as Monitoring returns them
                values = by_end[end_seconds]
                value = values[0] if reducer == Reducer.REDUCE_NONE else _reduce(values, reducer)
                series.points.append(
                    monitoring_v3.Point(
                        interval={
                            "start_time": {"seconds": int(end_seconds - period)},
                            "end_time": {"seconds": int(end_seconds)},
                        },
                        value=_typed(value),
                    )
                )
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
            for other in self.series.values():
                if other.metric_type == raw.metric_type and (other.kind, other.value_type) != (
                    raw.kind,
                    raw.value_type,
                ):
                    raise Invalid(f"Value type or kind of {raw.metric_type} does not match its descriptor.")
            value = _untyped(point.value)
            if isinstance(value, distribution_pb2.Distribution):
                bounds = list(value.bucket_options.explicit_buckets.bounds)
                if len(value.bucket_counts) > len(bounds) + 1 or sum(value.bucket_counts) != value.count:
                    raise Invalid("Distribution bucket counts do not match its count or bounds.")
            pending.append((raw, end, value))
        for raw, end, value in pending:  # all or nothing, like the real API for a valid request
            self.series.setdefault(raw.key(), raw).points.append((end, value))


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


def _matches(raw: RawSeries, clauses) -> bool:
    for key, (op, value) in clauses.items():
        actual = _field(raw, key)
        if op == "=" and actual != value:
            return False
        if op == "one_of" and actual not in value:
            return False
        if op == "starts_with" and not actual.startswith(value[0]):
            return False
        if op == "monitoring.regex.full_match" and not re.fullmatch(value[0], actual):
            return False
    return True


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


def _align(raw: RawSeries, aligner, period: float, start: float, end: float) -> dict[float, object]:
    points = raw.points
    if raw.kind == Kind.CUMULATIVE and aligner == Aligner.ALIGN_DELTA:
        points = _cumulative_deltas(points)
    inside = [(t, v) for t, v in points if start < t <= end]
    if aligner == Aligner.ALIGN_NONE:
        return dict(inside)
    buckets: dict[float, list] = {}
    for t, v in inside:
        bucket_end = end - math.floor((end - t) / period) * period
        buckets.setdefault(bucket_end, []).append(v)
    return {bucket_end: _aggregate(values, aligner) for bucket_end, values in buckets.items()}


def _aggregate(values: list, aligner):
    if aligner in (Aligner.ALIGN_SUM, Aligner.ALIGN_DELTA):  # DELTA points (or CUMULATIVE increases) add up
        return _sum(values)
    if aligner == Aligner.ALIGN_MAX:
        return max(values)
    if aligner == Aligner.ALIGN_MIN:
        return min(values)
    if aligner == Aligner.ALIGN_MEAN:
        return float(sum(values)) / len(values)
    if aligner == Aligner.ALIGN_COUNT:
        return len(values)
    raise Invalid(f"The fake does not implement {Aligner(aligner).name}.")


def _reduce(values: list, reducer):
    if reducer == Reducer.REDUCE_SUM:
        return _sum(values)
    if reducer == Reducer.REDUCE_MAX:
        return max(values)
    if reducer == Reducer.REDUCE_MIN:
        return min(values)
    if reducer == Reducer.REDUCE_MEAN:
        return float(sum(values)) / len(values)
    if reducer == Reducer.REDUCE_COUNT:
        return len(values)
    raise Invalid(f"The fake does not implement {Reducer(reducer).name}.")


def _sum(values: list):
    if not isinstance(values[0], distribution_pb2.Distribution):
        return sum(values)
    bounds = list(values[0].bucket_options.explicit_buckets.bounds)
    counts = [0] * (len(bounds) + 1)
    total = count = 0
    for value in values:
        if list(value.bucket_options.explicit_buckets.bounds) != bounds:
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


def _typed(value) -> monitoring_v3.TypedValue:
    if isinstance(value, distribution_pb2.Distribution):
        return monitoring_v3.TypedValue(distribution_value=value)
    if isinstance(value, int):
        return monitoring_v3.TypedValue(int64_value=value)
    return monitoring_v3.TypedValue(double_value=float(value))


def _untyped(value: monitoring_v3.TypedValue):
    which = monitoring_v3.TypedValue.pb(value).WhichOneof("value")
    if which == "distribution_value":
        copy = distribution_pb2.Distribution()
        copy.CopyFrom(value.distribution_value)
        return copy
    return getattr(value, which)
