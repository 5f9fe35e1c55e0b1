"""Polling the Metrics port into per-minute rollups (through a double at the port boundary)."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import WorkloadClassFactory
from tests.workloads.telemetry_doubles import FakeMetrics, distribution, installed_metrics
from workloads.domain import histogram
from workloads.models import ClassTelemetry, MetricRollup, PollRun, Resolution
from workloads.providers.base import MetricKind, ProviderError
from workloads.selectors.rollups import POLLED_METRICS
from workloads.services.polling import metrics_poll

NOW = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def metrics():
    with installed_metrics(FakeMetrics()) as fake:
        yield fake


def minute_rows(workload_class):
    return {
        row.bucket_start: row
        for row in MetricRollup.objects.filter(workload_class=workload_class, resolution=Resolution.MINUTE)
    }


def known_series(metrics: FakeMetrics):
    """Every metric as a simple function of the step's end, so expected rows are easy to write."""
    metrics.set(MetricKind.OLDEST_UNACKED_AGE, lambda slug, end: float(end.minute * 10))
    metrics.set(MetricKind.UNDELIVERED_MESSAGES, lambda slug, end: float(end.minute + 100))
    metrics.set(MetricKind.DEAD_LETTER_BACKLOG, lambda slug, end: 3.0)
    metrics.set(MetricKind.INSTANCE_COUNT, lambda slug, end: 2.0)
    metrics.set(MetricKind.COMPLETED, lambda slug, end: float(end.minute))
    metrics.set(MetricKind.FAILED, lambda slug, end: 1.0)
    metrics.set(MetricKind.RECORDS, lambda slug, end: 10.0 * end.minute)
    metrics.set(MetricKind.TOKENS, lambda slug, end: 1000.0)
    metrics.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: distribution([0.5, 0.5, 2.0]))


def test_rollups_hold_the_values_of_a_known_series(db, metrics):
    wc = WorkloadClassFactory()
    known_series(metrics)
    summary = metrics_poll(now=NOW, window_minutes=10)

    assert summary.window_end == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # aligned to the minute
    rows = minute_rows(wc)
    assert sorted(rows) == [summary.window_end - i * MINUTE for i in range(10, 0, -1)]
    row = rows[datetime(2026, 3, 2, 9, 57, tzinfo=UTC)]  # the step ending 09:58
    assert row.oldest_unacked_age_seconds == 580
    assert row.backlog == 158
    assert row.dead_letter_backlog == 3
    assert row.instances == 2 and row.instance_seconds == 120
    assert (row.completed, row.failed, row.records, row.tokens) == (58, 1, 580, 1000)
    assert row.latency_count == 3 and row.latency_sum == 3.0
    assert row.latency_buckets == histogram.from_values([0.5, 0.5, 2.0])
    assert row.fetched_at == NOW
    assert row.newest_sample_age_seconds == 30  # newest point ends 10:00:00, fetched 10:00:30
    assert all(run.ok for run in summary.runs) and len(summary.runs) == len(POLLED_METRICS)


def test_repolling_an_overlapping_window_is_idempotent(db, metrics):
    wc = WorkloadClassFactory()
    known_series(metrics)
    metrics_poll(now=NOW, window_minutes=10)
    first = {b: (r.completed, r.failed, r.records, r.latency_count) for b, r in minute_rows(wc).items()}
    metrics_poll(now=NOW + 3 * MINUTE, window_minutes=10)  # overlaps 7 of the 10 minutes
    second = minute_rows(wc)

    assert len(second) == 13
    for bucket, values in first.items():
        assert (second[bucket].completed, second[bucket].failed, second[bucket].records) == values[:3]
        assert second[bucket].latency_count == values[3]
    hourly = MetricRollup.objects.get(
        workload_class=wc, resolution=Resolution.HOUR, bucket_start=NOW.replace(minute=0, second=0)
    )
    assert hourly.completed == sum(r.completed for b, r in second.items() if b.hour == 10)


def test_a_late_point_replaces_the_minute_instead_of_adding(db, metrics):
    wc = WorkloadClassFactory()
    minute = datetime(2026, 3, 2, 9, 55, tzinfo=UTC)
    metrics.add(MetricKind.COMPLETED, wc.slug, minute + MINUTE, 4.0)  # partial count first
    metrics_poll(now=NOW, window_minutes=10)
    metrics.add(MetricKind.COMPLETED, wc.slug, minute + MINUTE, 9.0)  # Monitoring caught up
    metrics_poll(now=NOW + MINUTE, window_minutes=10)
    assert minute_rows(wc)[minute].completed == 9


def test_a_gap_is_not_a_zero_and_one_metric_never_blanks_another(db, metrics):
    wc = WorkloadClassFactory()
    minute = datetime(2026, 3, 2, 9, 55, tzinfo=UTC)
    metrics.add(MetricKind.COMPLETED, wc.slug, minute + MINUTE, 7.0)
    metrics_poll(now=NOW, window_minutes=10)
    row = minute_rows(wc)[minute]
    assert row.backlog is None and row.oldest_unacked_age_seconds is None  # no sample, no value
    assert len(minute_rows(wc)) == 1  # minutes without any point get no row

    # Next poll: the completion point is there again, plus a backlog sample for the same minute.
    metrics.add(MetricKind.UNDELIVERED_MESSAGES, wc.slug, minute + MINUTE, 12.0)
    metrics.fail(MetricKind.COMPLETED, ProviderError("Monitoring unavailable", permanent=False, code="UNAVAILABLE"))
    metrics_poll(now=NOW + MINUTE, window_minutes=10)
    row.refresh_from_db()
    assert (row.completed, row.backlog) == (7, 12)  # the failed metric left its column alone


def test_a_failing_metric_is_recorded_and_the_others_still_land(db, metrics):
    wc = WorkloadClassFactory()
    known_series(metrics)
    metrics.fail(
        MetricKind.COMPLETION_LATENCY,
        ProviderError("Permission denied on project p", permanent=True, code="PERMISSION_DENIED"),
    )
    metrics.fail(MetricKind.TOKENS, RuntimeError("socket closed"))
    summary = metrics_poll(now=NOW, window_minutes=10)

    failed = {run.metric: run.error for run in PollRun.objects.filter(ok=False)}
    assert failed == {
        "completion_latency": "permanent PERMISSION_DENIED: Permission denied on project p",
        "tokens": "RuntimeError: socket closed",
    }
    assert PollRun.objects.filter(ok=True).count() == len(POLLED_METRICS) - 2
    assert {run.metric for run in summary.failed} == set(failed)
    row = minute_rows(wc)[datetime(2026, 3, 2, 9, 57, tzinfo=UTC)]
    assert row.completed == 58 and row.latency_count == 0 and row.tokens == 0
    assert metrics.calls[MetricKind.RECORDS] == 1  # polled after the failures


def test_a_malformed_latency_point_fails_that_metric_only(db, metrics):
    wc = WorkloadClassFactory()
    metrics.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: 1.5)  # a float, not a Distribution
    metrics.set(MetricKind.COMPLETED, lambda slug, end: 1.0)
    metrics_poll(now=NOW, window_minutes=2)
    run = PollRun.objects.get(metric="completion_latency")
    assert not run.ok and "Distribution" in run.error
    assert sum(r.completed for r in minute_rows(wc).values()) == 2


def test_polling_200_classes_makes_exactly_one_provider_call_per_metric(db, metrics):
    classes = WorkloadClassFactory.create_batch(200)
    known_series(metrics)
    summary = metrics_poll(now=NOW, window_minutes=10)

    assert dict(metrics.calls) == {metric: 1 for metric in POLLED_METRICS}
    assert {n_targets for _m, n_targets, *_ in metrics.call_log} == {200}
    assert summary.rollups_written == 200 * 10
    assert MetricRollup.objects.filter(resolution=Resolution.MINUTE).count() == 2000
    assert ClassTelemetry.objects.count() == 200
    assert (
        MetricRollup.objects.filter(workload_class=classes[-1], resolution=Resolution.HOUR).count() == 1
    )  # 09:50-09:59


def test_freshness_tracks_the_newest_sample_and_does_not_move_when_metrics_stop(db, metrics):
    wc = WorkloadClassFactory()
    cutoff = datetime(2026, 3, 2, 9, 58, tzinfo=UTC)
    metrics.set(MetricKind.UNDELIVERED_MESSAGES, lambda slug, end: 5.0 if end <= cutoff else None)
    metrics_poll(now=NOW, window_minutes=10)
    freshness = ClassTelemetry.objects.get(workload_class=wc)
    assert freshness.newest_sample_at == cutoff
    metrics_poll(now=NOW + 20 * MINUTE, window_minutes=10)  # nothing new arrives
    freshness.refresh_from_db()
    assert freshness.newest_sample_at == cutoff and freshness.fetched_at == NOW


def test_no_classes_means_no_provider_calls(db, metrics):
    summary = metrics_poll(now=NOW)
    assert summary.runs == [] and not metrics.calls


def test_rows_carry_slo_good_events_and_the_class_its_live_values(db, metrics):
    from decimal import Decimal

    from tests.factories import SloFactory

    wc = WorkloadClassFactory()
    SloFactory(
        workload_class=wc,
        kind="queue_age",
        percentile=Decimal("95"),
        threshold_seconds=500,
        target_percent=Decimal("99"),
    )
    SloFactory(
        workload_class=wc,
        kind="completion_latency",
        percentile=Decimal("95"),
        threshold_seconds=1.0,
        target_percent=Decimal("99"),
    )
    known_series(metrics)  # ages are minute x 10 s; latencies 0.5, 0.5 and 2.0 s every minute
    metrics_poll(now=NOW + 5 * MINUTE, window_minutes=70)

    rows = minute_rows(wc)
    assert (
        rows[datetime(2026, 3, 2, 9, 48, tzinfo=UTC)].queue_age_good,
        rows[datetime(2026, 3, 2, 9, 48, tzinfo=UTC)].queue_age_minutes,
    ) == (1, 1)  # 490 s
    assert rows[datetime(2026, 3, 2, 9, 50, tzinfo=UTC)].queue_age_good == 0  # 510 s
    assert {row.latency_good for row in rows.values()} == {2.0}

    live = ClassTelemetry.objects.get(workload_class=wc)
    assert live.newest_sample_at == datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
    assert live.oldest_unacked_age_seconds == 50 and live.backlog == 105  # the step ending 10:05
    assert live.completed_last_hour == sum(
        row.completed for b, row in rows.items() if b >= NOW.replace(second=0) - 55 * MINUTE
    )
    assert live.failed_last_hour == 60
    assert histogram.bucket_index(live.latency_p95_seconds) == histogram.bucket_index(2.0)
    assert (live.queue_age_threshold_seconds, live.latency_threshold_seconds) == (500, 1.0)
