"""Migration comparison from rollups: failure rate, latency percentiles from merged histograms and
cost per 1k records, each with its counts; before/after and class vs class."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from workloads.domain import histogram
from workloads.models import MetricRollup, Resolution
from workloads.selectors.comparison import Period, comparison

NOW = timezone.now().replace(second=0, microsecond=0)
BEFORE = NOW - timedelta(days=2)
AFTER = NOW - timedelta(hours=2)


def _minutes(workload_class, start, *, minutes, completed, failed, records, latency, instances=2):
    """`minutes` minute rollups from `start`, each with the same counts and latencies."""
    buckets = histogram.from_values(latency)
    MetricRollup.objects.bulk_create(
        MetricRollup(
            workload_class=workload_class,
            resolution=Resolution.MINUTE,
            bucket_start=start + timedelta(minutes=i),
            completed=completed,
            failed=failed,
            records=records,
            instances=instances,
            instance_seconds=instances * 60,
            latency_buckets=buckets,
            latency_count=len(latency),
            latency_sum=sum(latency),
            fetched_at=NOW,
        )
        for i in range(minutes)
    )


@pytest.fixture
def migrated(db):
    """A class before (slow, failing) and after a migration (fast, reliable, cheaper per record)."""
    workload_class = WorkloadClassFactory(slug="doc-render")
    _minutes(workload_class, BEFORE, minutes=10, completed=90, failed=10, records=100, latency=[2.0] * 9 + [30.0])
    _minutes(workload_class, AFTER, minutes=10, completed=99, failed=1, records=200, latency=[0.5] * 10)
    return workload_class


def test_before_and_after_on_one_class(migrated):
    result = comparison(
        a=Period(migrated, BEFORE, BEFORE + timedelta(minutes=10)),
        b=Period(migrated, AFTER, AFTER + timedelta(minutes=10)),
        now=NOW,
    )
    a, b = result.a, result.b
    assert (a.completed, a.failed, a.outcomes, a.failure_rate) == (900, 100, 1000, 0.1)
    assert (b.completed, b.failed, b.failure_rate) == (990, 10, 0.01)
    assert result.failure_rate_change == pytest.approx(-0.09)
    assert a.latency_count == 100 and b.latency_count == 100
    assert a.latency_p50_seconds == pytest.approx(histogram.percentile(histogram.from_values([2.0] * 9 + [30.0]), 50))
    assert a.latency_p95_seconds > 20 and b.latency_p95_seconds < 1
    assert result.latency_p95_ratio < 0.05
    # 1200 instance-seconds x (1 vCPU x 0.000018 + 0.5 GiB x 0.000002) + 1000 records x 0.000001
    assert a.total_cost == Decimal("0.023800") and a.records == 1000
    assert a.cost_per_1k_records == Decimal("0.023800")
    assert b.cost_per_1k_records == Decimal("0.012400")  # the same compute over twice the records
    assert result.cost_per_1k_ratio == pytest.approx(0.0124 / 0.0238)
    assert result.notes == []


def test_a_period_outside_the_data_has_no_rates_and_says_so(migrated):
    empty = Period(migrated, NOW - timedelta(days=5), NOW - timedelta(days=4))
    result = comparison(a=empty, b=Period(migrated, AFTER, AFTER + timedelta(minutes=10)), now=NOW)
    assert result.a.failure_rate is None and result.a.latency_p50_seconds is None
    assert result.failure_rate_change is None and result.latency_p95_ratio is None
    assert result.notes == ["A has only 0 outcomes (fewer than 100): its rates are thin evidence."]


def test_two_classes_side_by_side_and_one_without_prices(migrated):
    other = WorkloadClassFactory(slug="doc-render-v2", cost_rates=None)
    _minutes(other, AFTER, minutes=2, completed=20, failed=0, records=20, latency=[1.0])
    window = (AFTER, AFTER + timedelta(minutes=10))
    result = comparison(a=Period(migrated, *window), b=Period(other, *window), now=NOW)
    assert result.b.completed == 40 and result.b.failure_rate == 0.0
    assert result.b.total_cost is None and result.cost_per_1k_ratio is None
    assert result.notes == [
        "B has only 40 outcomes (fewer than 100): its rates are thin evidence.",
        "B (doc-render-v2) has no price sheet: no cost.",
    ]
