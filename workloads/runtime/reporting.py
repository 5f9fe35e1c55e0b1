"""Worker metrics: completions, failures, records, tokens and the completion-latency histogram,
aggregated in memory and written through `Metrics.write_worker_report` once per interval (and at
shutdown), never one point per job. On GCP each report is a handful of custom-metric points per
instance per interval; locally one row plus its non-empty buckets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from django.db import connections
from django.utils import timezone

from workloads.domain.histogram import BUCKETS, bucket_index
from workloads.providers.base import Distribution, Metrics, WorkerReport

logger = logging.getLogger(__name__)


class Reporter:
    def __init__(
        self,
        *,
        metrics: Metrics,
        slug: str,
        worker_pool: str,
        instance_id: str = "",
        now: Callable[[], datetime] = timezone.now,
    ):
        self.metrics = metrics
        self.slug = slug
        self.worker_pool = worker_pool
        self.instance_id = instance_id
        self._now = now
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one write at a time: the interval thread and shutdown
        self._reset(now())

    def _reset(self, start: datetime) -> None:
        self.interval_start = start
        self.completed = 0
        self.failed = 0
        self.records = 0
        self.tokens = 0
        self.latency_count = 0
        self.latency_sum = 0.0
        self.buckets = [0] * BUCKETS

    def observe(self, *, completed: bool = False, failed: bool = False, latency: float | None = None,
                records: int = 0, tokens: int = 0) -> None:  # fmt: skip
        with self._lock:
            self.completed += int(completed)
            self.failed += int(failed)
            self.records += records
            self.tokens += tokens
            if latency is not None:
                self.latency_count += 1
                self.latency_sum += latency
                self.buckets[bucket_index(latency)] += 1

    def _take(self) -> WorkerReport | None:
        """The report of the interval ending now, and a fresh interval; None when nothing happened."""
        now = self._now()
        with self._lock:
            if not (self.completed or self.failed or self.records or self.tokens or self.latency_count):
                return None
            report = WorkerReport(
                slug=self.slug,
                worker_pool=self.worker_pool,
                interval_start=self.interval_start,
                interval_end=now,
                completed=self.completed,
                failed=self.failed,
                records=self.records,
                tokens=self.tokens,
                latency=Distribution(count=self.latency_count, sum=self.latency_sum, bucket_counts=tuple(self.buckets)),
                instance_id=self.instance_id,
            )
            self._reset(now)
        return report

    def _give_back(self, report: WorkerReport) -> None:
        """A write failed: fold the report into the running interval so nothing is lost."""
        with self._lock:
            self.interval_start = min(self.interval_start, report.interval_start)
            self.completed += report.completed
            self.failed += report.failed
            self.records += report.records
            self.tokens += report.tokens
            self.latency_count += report.latency.count
            self.latency_sum += report.latency.sum
            self.buckets = [a + b for a, b in zip(self.buckets, report.latency.bucket_counts, strict=True)]

    def flush(self) -> bool:
        """Write what was observed since the last flush; False if the write failed (kept for the next)."""
        with self._flush_lock:
            report = self._take()
            if report is None:
                return True
            try:
                self.metrics.write_worker_report(report)
            except Exception:
                logger.exception("Writing the worker report of %s failed; it is kept for the next flush", self.slug)
                self._give_back(report)
                return False
            return True

    def run(self, stop: threading.Event, *, interval_seconds: float) -> None:
        """Flush every `interval_seconds` until `stop` is set (the caller flushes once more after)."""
        try:
            while not stop.wait(interval_seconds):
                self.flush()
        finally:
            connections.close_all()  # this thread's connections: it ends here
