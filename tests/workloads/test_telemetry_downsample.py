"""Folding old minute rollups into hourly ones, and pruning."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import WorkloadClassFactory
from tests.workloads.telemetry_doubles import FakeMetrics, distribution, installed_metrics
from workloads.domain import histogram
from workloads.models import MetricRollup, PollRun, Resolution
from workloads.providers.base import MetricKind
from workloads.selectors.rollups import POLLED_METRICS
from workloads.services.polling import metrics_poll
from workloads.services.rollups import rollups_downsample

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
OLD = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)  # 19 days before NOW: past the 14-day minute retention


@pytest.fixture
def metrics():
    with installed_metrics(FakeMetrics()) as fake:
        yield fake


@pytest.fixture
def old_and_recent_minutes(db, metrics):
    wc = WorkloadClassFactory()
    metrics.set(MetricKind.COMPLETED, lambda slug, end: float(end.minute))
    metrics.set(MetricKind.INSTANCE_COUNT, lambda slug, end: 2.0 if (end - timedelta(minutes=1)).hour == 8 else 4.0)
    metrics.set(MetricKind.UNDELIVERED_MESSAGES, lambda slug, end: float(end.minute))
    metrics.set(MetricKind.OLDEST_UNACKED_AGE, lambda slug, end: 30.0 if end.minute != 30 else 900.0)
    metrics.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: distribution([0.2, 3.0]))
    metrics_poll(now=OLD + timedelta(hours=2), window_minutes=120)  # 08:00-09:59, 19 days old
    metrics_poll(now=NOW, window_minutes=30)  # 11:30-11:59 today
    return wc


def rows(wc, resolution):
    return {r.bucket_start: r for r in MetricRollup.objects.filter(workload_class=wc, resolution=resolution)}


def test_old_minutes_fold_into_equal_hourly_rows_and_are_deleted(old_and_recent_minutes):
    wc = old_and_recent_minutes
    hourly_before = {
        b: (r.completed, r.instance_seconds, r.latency_count) for b, r in rows(wc, Resolution.HOUR).items()
    }

    summary = rollups_downsample(now=NOW)

    assert summary.minutes_deleted == 120 and summary.hours_folded == 2
    minutes = rows(wc, Resolution.MINUTE)
    assert len(minutes) == 30 and min(minutes) == datetime(2026, 3, 20, 11, 30, tzinfo=UTC)
    hours = rows(wc, Resolution.HOUR)
    eight = hours[OLD]
    # The step ending 08:01 is minute 08:00 with value 1 ... minute 08:59 ends 09:00 with value 0.
    assert eight.completed == sum(range(1, 60))
    assert eight.instances == 2.0 and eight.instance_seconds == 2 * 3600
    assert eight.backlog == 59  # the hour keeps its worst minute
    assert eight.oldest_unacked_age_seconds == 900
    assert eight.queue_ages == [30.0] * 59 + [900.0]
    assert eight.latency_count == 120 and eight.latency_buckets == histogram.from_values([0.2, 3.0] * 60)
    # Folding recomputes what the polls had already kept up to date: nothing changes.
    assert {b: (r.completed, r.instance_seconds, r.latency_count) for b, r in hours.items()} == hourly_before


def test_downsampling_twice_changes_nothing(old_and_recent_minutes):
    wc = old_and_recent_minutes
    rollups_downsample(now=NOW)
    snapshot = {(r.resolution, r.bucket_start): (r.completed, r.latency_buckets) for r in MetricRollup.objects.all()}
    again = rollups_downsample(now=NOW)
    assert (again.minutes_deleted, again.hours_folded) == (0, 0)
    assert {
        (r.resolution, r.bucket_start): (r.completed, r.latency_buckets) for r in MetricRollup.objects.all()
    } == snapshot
    assert rows(wc, Resolution.HOUR)[OLD].completed == sum(range(1, 60))


def test_a_rerun_after_an_interrupted_fold_gives_the_same_hours(old_and_recent_minutes):
    wc = old_and_recent_minutes
    # As if a previous run died after writing hourly rows but before deleting the minutes: the
    # hourly row is wrong (here, zeroed) and its minutes are all still there.
    MetricRollup.objects.filter(workload_class=wc, resolution=Resolution.HOUR, bucket_start=OLD).update(completed=0)
    rollups_downsample(now=NOW)
    assert rows(wc, Resolution.HOUR)[OLD].completed == sum(range(1, 60))


def test_hourly_rows_and_poll_runs_past_retention_are_deleted(old_and_recent_minutes, settings):
    settings.TELEMETRY_HOUR_RETENTION_DAYS = 10
    summary = rollups_downsample(now=NOW)
    assert summary.hours_deleted == 2
    assert not MetricRollup.objects.filter(bucket_start__lt=NOW - timedelta(days=10)).exists()
    assert summary.poll_runs_deleted == len(POLLED_METRICS)  # the 19-day-old poll's runs, one per metric
    assert not PollRun.objects.filter(started_at__lt=NOW - timedelta(days=7)).exists()
