"""Migration comparison: two periods of one class (before vs after), or two classes (old pipeline
vs new), on failure rate, lead time and cost per 1k records, each number with the counts behind
it, so a migration is decided on evidence and a rate over a handful of jobs is seen as such.

Read from the telemetry rollups (whole hours from hourly rows, ragged edges from minute rows), with
cost from the same attribution as the cost report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q

from workloads.domain import histogram
from workloads.domain.windows import window_spans
from workloads.models import MetricRollup, WorkloadClass
from workloads.selectors.cost import class_cost, class_usage
from workloads.selectors.rollups import minutes_kept_since

# Fewer outcomes than this and a side's rates are flagged as thin evidence.
MIN_OUTCOMES = 100


@dataclass(frozen=True)
class Period:
    workload_class: WorkloadClass
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PeriodFigures:
    period: Period
    completed: int
    failed: int
    failure_rate: float | None  # failed / (completed + failed); None without outcomes
    latency_count: int  # completions the latency percentiles are computed from
    latency_p50_seconds: float | None
    latency_p95_seconds: float | None
    records: int
    instance_seconds: Decimal
    total_cost: Decimal | None  # None when the class has no price sheet
    currency: str
    cost_per_1k_records: Decimal | None  # None without a price sheet, records or known instance time
    instance_time_source: str = ""  # where the compute cost comes from (selectors.cost)

    @property
    def outcomes(self) -> int:
        return self.completed + self.failed

    @property
    def thin(self) -> bool:
        return self.outcomes < MIN_OUTCOMES


@dataclass(frozen=True)
class Comparison:
    a: PeriodFigures
    b: PeriodFigures
    failure_rate_change: float | None  # b - a, as a fraction (percentage points / 100)
    latency_p50_ratio: float | None  # b / a
    latency_p95_ratio: float | None
    cost_per_1k_ratio: float | None  # None across currencies
    notes: list[str]


def _latency(period: Period, *, now: datetime) -> list[int]:
    spans = window_spans(period.start, period.end, minutes_kept_since=minutes_kept_since(now))
    query = Q(pk__in=[])
    for span in spans:
        query |= Q(resolution=span.resolution, bucket_start__gte=span.start, bucket_start__lt=span.end)
    rows = MetricRollup.objects.filter(query, workload_class=period.workload_class).exclude(latency_count=0)
    return histogram.merge(rows.values_list("latency_buckets", flat=True))


def period_figures(period: Period, *, now: datetime) -> PeriodFigures:
    workload_class = period.workload_class
    usage = class_usage(start=period.start, end=period.end, class_ids=[workload_class.pk], now=now)
    line = class_cost(workload_class, usage.get(workload_class.pk, {}))
    outcomes = line.completed + line.failed
    latency = _latency(period, now=now)
    latency_count = sum(latency)
    return PeriodFigures(
        period=period,
        completed=line.completed,
        failed=line.failed,
        failure_rate=line.failed / outcomes if outcomes else None,
        latency_count=latency_count,
        latency_p50_seconds=histogram.percentile(latency, 50) if latency_count else None,
        latency_p95_seconds=histogram.percentile(latency, 95) if latency_count else None,
        records=line.records,
        instance_seconds=line.instance_seconds,
        total_cost=line.total_cost if line.has_rates else None,
        currency=line.currency,
        cost_per_1k_records=line.cost_per_1k_records if line.has_rates else None,
        instance_time_source=line.instance_time_source,
    )


def _ratio(b, a) -> float | None:
    if a is None or b is None or not a:
        return None
    return float(b) / float(a)


def comparison(*, a: Period, b: Period, now: datetime) -> Comparison:
    fa, fb = period_figures(a, now=now), period_figures(b, now=now)
    notes = []
    for name, figures in (("A", fa), ("B", fb)):
        if figures.thin:
            notes.append(
                f"{name} has only {figures.outcomes} outcomes (fewer than {MIN_OUTCOMES}): its rates are thin evidence."
            )
        if figures.total_cost is None:
            notes.append(f"{name} ({figures.period.workload_class.slug}) has no price sheet: no cost.")
        elif figures.instance_time_source.startswith("unknown"):
            notes.append(
                f"{name} ({figures.period.workload_class.slug}): instance time {figures.instance_time_source}, "
                "so its compute cost and cost per 1k records are unknown."
            )
    same_currency = fa.currency == fb.currency
    if fa.total_cost is not None and fb.total_cost is not None and not same_currency:
        notes.append(f"A is priced in {fa.currency} and B in {fb.currency}: costs are not compared.")
    rate_change = None
    if fa.failure_rate is not None and fb.failure_rate is not None:
        rate_change = fb.failure_rate - fa.failure_rate
    return Comparison(
        a=fa,
        b=fb,
        failure_rate_change=rate_change,
        latency_p50_ratio=_ratio(fb.latency_p50_seconds, fa.latency_p50_seconds),
        latency_p95_ratio=_ratio(fb.latency_p95_seconds, fa.latency_p95_seconds),
        cost_per_1k_ratio=_ratio(fb.cost_per_1k_records, fa.cost_per_1k_records) if same_currency else None,
        notes=notes,
    )
