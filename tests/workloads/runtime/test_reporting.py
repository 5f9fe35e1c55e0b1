import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from workloads.domain.histogram import bucket_index
from workloads.providers.base import LATENCY_BUCKET_BOUNDS, MetricKind, Metrics, ProviderError, WorkerReport
from workloads.runtime.reporting import Reporter


class RecordingMetrics(Metrics):
    """Keeps the reports it is given; fails the next `failures` writes like an unavailable backend."""

    def __init__(self, failures: int = 0):
        self.reports: list[WorkerReport] = []
        self.failures = failures

    def series(self, metric, targets, *, start, end, step_seconds=60):
        raise NotImplementedError

    def write_worker_report(self, report: WorkerReport) -> None:
        if self.failures:
            self.failures -= 1
            raise ProviderError("Monitoring is unavailable", permanent=False, code="UNAVAILABLE")
        self.reports.append(report)


class Clock:
    def __init__(self):
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self):
        return self.now


def test_it_writes_one_report_per_interval_whatever_the_number_of_jobs():
    metrics, clock = RecordingMetrics(), Clock()
    reporter = Reporter(metrics=metrics, slug="docs", worker_pool="pools/docs", instance_id="docs-1", now=clock)
    latencies = [0.02, 0.5, 0.5, 3.0, 45.0]
    for latency in latencies:
        reporter.observe(completed=True, latency=latency, records=2, tokens=10)
    reporter.observe(failed=True, records=1)
    clock.now += timedelta(seconds=60)
    assert reporter.flush()
    [report] = metrics.reports
    assert (report.completed, report.failed, report.records, report.tokens) == (5, 1, 11, 50)
    assert (report.interval_start, report.interval_end) == (clock.now - timedelta(seconds=60), clock.now)
    assert (report.slug, report.worker_pool, report.instance_id) == ("docs", "pools/docs", "docs-1")
    assert report.latency.count == 5 and report.latency.sum == pytest.approx(sum(latencies))
    assert len(report.latency.bucket_counts) == len(LATENCY_BUCKET_BOUNDS) + 1
    assert report.latency.bucket_counts[bucket_index(0.5)] == 2
    assert sum(report.latency.bucket_counts) == 5
    # Nothing new: nothing written.
    assert reporter.flush() and len(metrics.reports) == 1


def test_a_failed_write_is_kept_for_the_next_flush():
    metrics, clock = RecordingMetrics(failures=1), Clock()
    reporter = Reporter(metrics=metrics, slug="docs", worker_pool="", now=clock)
    started = clock.now
    reporter.observe(completed=True, latency=1.0)
    clock.now += timedelta(seconds=60)
    assert not reporter.flush()
    reporter.observe(completed=True, latency=2.0)
    clock.now += timedelta(seconds=60)
    assert reporter.flush()
    [report] = metrics.reports
    assert report.completed == 2 and report.latency.count == 2
    assert report.interval_start == started


def test_the_reporting_thread_flushes_on_its_interval():
    metrics = RecordingMetrics()
    reporter = Reporter(metrics=metrics, slug="docs", worker_pool="")
    stop = threading.Event()
    thread = threading.Thread(target=reporter.run, args=(stop,), kwargs={"interval_seconds": 0.2})
    thread.start()
    try:
        deadline = time.monotonic() + 0.7
        jobs = 0
        while time.monotonic() < deadline:
            reporter.observe(completed=True, latency=0.1)
            jobs += 1
            time.sleep(0.002)
    finally:
        stop.set()
        thread.join(timeout=5)
    reporter.flush()
    assert sum(r.completed for r in metrics.reports) == jobs
    assert 2 <= len(metrics.reports) <= 6 < jobs


@pytest.mark.django_db
def test_reports_reach_the_local_metrics_tables():
    from workloads.providers.base import MetricTarget
    from workloads.providers.local import LocalMetrics

    metrics = LocalMetrics()
    reporter = Reporter(metrics=metrics, slug="docs", worker_pool="pools/docs")
    for latency in (0.2, 0.4, 0.8):
        reporter.observe(completed=True, latency=latency, tokens=7)
    reporter.flush()
    target = MetricTarget(slug="docs", subscription="s", dead_letter_subscription="d", worker_pool="pools/docs")
    now = datetime.now(UTC)
    window = dict(start=now - timedelta(minutes=2), end=now + timedelta(minutes=1))
    [tokens] = metrics.series(MetricKind.TOKENS, [target], **window)["docs"]
    assert tokens.value == 21
    [latency] = metrics.series(MetricKind.COMPLETION_LATENCY, [target], **window)["docs"]
    assert latency.value.count == 3
