"""A test double of the Metrics port (workloads.providers.base.Metrics), installed with
`set_providers`: series come from values the test sets, and every call is counted at the port.

It behaves like the port's contract: one call per metric for all targets, points keyed by slug,
oldest first, `end` aligned to the step, steps without data absent. The lead can swap it for the
real local or GCP adapter (behind the same `installed_metrics` context manager) without touching
the tests' assertions.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from workloads.domain import histogram
from workloads.providers import set_providers
from workloads.providers.base import (
    Distribution,
    MetricKind,
    Metrics,
    MetricTarget,
    Point,
    Providers,
    WorkerReport,
)

ValueFn = Callable[[str, datetime], "float | Distribution | None"]


def distribution(values: Iterable[float]) -> Distribution:
    values = list(values)
    return Distribution(count=len(values), sum=float(sum(values)), bucket_counts=tuple(histogram.from_values(values)))


def lognormal_latencies(count: int, *, median: float, sigma: float = 0.8, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(0, sigma) * median for _ in range(count)]


class FakeMetrics(Metrics):
    def __init__(self):
        self.calls: Counter[MetricKind] = Counter()
        self.call_log: list[tuple[MetricKind, int, datetime, datetime, int]] = []
        self.failures: dict[MetricKind, Exception] = {}
        self.reports: list[WorkerReport] = []
        self._functions: dict[MetricKind, ValueFn] = {}
        self._points: dict[tuple[MetricKind, str], dict[datetime, float | Distribution]] = {}

    # --- what the test sets up -----------------------------------------------------------------------
    def set(self, metric: MetricKind, fn: ValueFn) -> None:
        """fn(slug, step_end) -> the step's value, or None for a gap."""
        self._functions[metric] = fn

    def add(self, metric: MetricKind, slug: str, end: datetime, value: float | Distribution) -> None:
        self._points.setdefault((metric, slug), {})[end] = value

    def fail(self, metric: MetricKind, exc: Exception) -> None:
        self.failures[metric] = exc

    # --- the port ------------------------------------------------------------------------------------
    def series(
        self,
        metric: MetricKind,
        targets: Sequence[MetricTarget],
        *,
        start: datetime,
        end: datetime,
        step_seconds: int = 60,
    ) -> dict[str, list[Point]]:
        self.calls[metric] += 1
        self.call_log.append((metric, len(targets), start, end, step_seconds))
        if metric in self.failures:
            raise self.failures[metric]
        step = timedelta(seconds=step_seconds)
        fn = self._functions.get(metric)
        result: dict[str, list[Point]] = {}
        for target in targets:
            explicit = self._points.get((metric, target.slug), {})
            points = []
            moment = start + step
            while moment <= end:
                value = explicit[moment] if moment in explicit else (fn(target.slug, moment) if fn else None)
                if value is not None:
                    points.append(Point(end=moment, value=value))
                moment += step
            if points:
                result[target.slug] = points
        return result

    def write_worker_report(self, report: WorkerReport) -> None:
        self.reports.append(report)


@contextmanager
def installed_metrics(metrics: Metrics | None = None):
    """Install `metrics` (default: a fresh FakeMetrics) as the Metrics port for the block."""
    metrics = metrics or FakeMetrics()
    set_providers(Providers(queue=None, pools=None, metrics=metrics, name="test-double"))
    try:
        yield metrics
    finally:
        set_providers(None)


def dead_lettered_work(workload_class, per_minute: Callable, *, start: datetime, end: datetime) -> int:
    """Dead-letter mirror rows for work whose final outcome was a dead letter: `per_minute(slug,
    minute_end)` of them last seen inside each minute of [start, end) (the same minutes a poll's
    rollups cover). The success ratio counts these as its bad events. Returns how many."""
    from django.utils import timezone

    from workloads.models import DeadLetter

    rows = []
    minute_end = start + timedelta(minutes=1)
    while minute_end <= end:
        seen = minute_end - timedelta(seconds=30)
        for _ in range(int(per_minute(workload_class.slug, minute_end) or 0)):
            n = len(rows)
            rows.append(
                DeadLetter(
                    workload_class=workload_class,
                    message_id=f"dl-{workload_class.slug}-{seen.timestamp():.0f}-{n}",
                    last_message_id=f"dl-{workload_class.slug}-{seen.timestamp():.0f}-{n}",
                    error_type="Failed",
                    error_signature="sig-failed",
                    first_seen=seen,
                    last_seen=seen,
                    mirrored_at=timezone.now(),
                )
            )
        minute_end += timedelta(minutes=1)
    DeadLetter.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
