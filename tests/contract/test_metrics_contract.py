"""The Metrics port's contract: one backend call per metric for all classes."""

from datetime import UTC, datetime, timedelta

from workloads.providers.base import GAUGE_METRICS, MetricKind


def _window():
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - timedelta(minutes=10), end


def test_series_for_200_classes_costs_one_call_per_metric(harness):
    targets = [harness.metric_target(f"cls-{i:03d}") for i in range(200)]
    start, end = _window()
    for metric in MetricKind:
        before = harness.count_metric_calls()
        result = harness.providers.metrics.series(metric, targets, start=start, end=end, step_seconds=60)
        calls = harness.count_metric_calls() - before
        assert 1 <= calls <= harness.max_calls_per_series, (metric, calls)
        assert set(result) <= {t.slug for t in targets}


def test_backlog_is_reported_per_class(harness):
    busy, idle = harness.metric_target("busy-class"), harness.metric_target("idle-class")
    harness.make_backlog(busy, 7)
    start, end = _window()
    result = harness.providers.metrics.series(
        MetricKind.UNDELIVERED_MESSAGES, [busy, idle], start=start, end=end, step_seconds=60
    )
    points = result["busy-class"]
    assert points, result
    assert points[-1].value == 7
    assert [p.end for p in points] == sorted(p.end for p in points)  # oldest first
    assert all(p.end.second == 0 and p.end.tzinfo is not None for p in points)  # aligned to the step
    assert all(p.value == 0 for p in result.get("idle-class", []))


def test_every_metric_kind_is_supported(harness):
    target = harness.metric_target("any-class")
    start, end = _window()
    for metric in MetricKind:
        result = harness.providers.metrics.series(metric, [target], start=start, end=end, step_seconds=60)
        assert isinstance(result, dict)
        for point in result.get("any-class", []):
            if metric in GAUGE_METRICS or metric != MetricKind.COMPLETION_LATENCY:
                assert isinstance(point.value, (int, float))
