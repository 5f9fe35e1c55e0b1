"""Cost attribution on hand-computed examples."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.factories import CostRatesFactory, WorkloadClassFactory
from tests.workloads.telemetry_doubles import FakeMetrics, installed_metrics
from workloads.models import MetricRollup, Resolution
from workloads.providers.base import MetricKind
from workloads.selectors.cost import cost_report
from workloads.services.polling import metrics_poll

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def metrics():
    with installed_metrics(FakeMetrics()) as fake:
        yield fake


def minute_of(end: datetime) -> int:
    return int((end - MINUTE - START) / MINUTE)


@pytest.fixture
def paused_class(db, metrics):
    """30 minutes: 3 instances, then paused at 0 for 10 minutes, then 1 instance; work only while
    running: 20 jobs, 50 records and 2,500 tokens a minute."""
    rates = CostRatesFactory(
        name="hand",
        currency="USD",
        vcpu_second=Decimal("0.00002"),
        gib_second=Decimal("0.000002"),
        per_record=Decimal("0.001"),
        per_1k_tokens=Decimal("0.01"),
    )
    wc = WorkloadClassFactory(
        slug="paused-docs",
        owner_team="docs",
        vcpu_per_instance=Decimal("2"),
        memory_gib_per_instance=Decimal("4"),
        cost_rates=rates,
    )

    def running(end):
        return not 10 <= minute_of(end) < 20

    def instances(slug, end):
        if slug != wc.slug or not 0 <= minute_of(end) < 30:
            return None
        return 0.0 if not running(end) else (3.0 if minute_of(end) < 10 else 1.0)

    def per_minute(value):
        return lambda slug, end: value if slug == wc.slug and 0 <= minute_of(end) < 30 and running(end) else None

    metrics.set(MetricKind.INSTANCE_COUNT, instances)
    metrics.set(MetricKind.COMPLETED, per_minute(20.0))
    metrics.set(MetricKind.RECORDS, per_minute(50.0))
    metrics.set(MetricKind.TOKENS, per_minute(2500.0))
    return wc


def poll(until: datetime, minutes: int):
    metrics_poll(now=until, window_minutes=minutes)


def test_cost_of_a_period_with_a_pause(paused_class):
    poll(START + 30 * MINUTE, 30)
    report = cost_report(start=START, end=START + 30 * MINUTE, group_by="class", now=START + timedelta(hours=1))
    (line,) = report.lines
    # instance-seconds: (3 x 10 + 0 x 10 + 1 x 10) minutes x 60 = 2,400
    assert line.instance_seconds == 2400
    assert line.vcpu_seconds == 4800 and line.gib_seconds == 9600
    assert line.compute_cost == Decimal("0.115200")  # 4,800 x 0.00002 + 9,600 x 0.000002
    assert line.records == 1000 and line.records_cost == Decimal("1.000000")
    assert line.tokens == 50000 and line.tokens_cost == Decimal("0.500000")
    assert line.total_cost == Decimal("1.615200")
    assert line.completed == 400
    assert line.cost_per_1k_records == Decimal("1.615200")
    assert line.cost_per_completed_job == Decimal("0.004038")
    assert line.currency == "USD" and line.has_rates


def test_a_period_cut_inside_the_pause_counts_only_its_minutes(paused_class):
    poll(START + 30 * MINUTE, 30)
    report = cost_report(start=START + 5 * MINUTE, end=START + 25 * MINUTE, now=START + timedelta(hours=1))
    (line,) = report.lines
    assert line.instance_seconds == (5 * 3 + 10 * 0 + 5 * 1) * 60
    assert line.records == 10 * 50


def test_a_long_period_reads_hourly_rows_and_minute_edges_to_the_same_total(db, metrics):
    wc = WorkloadClassFactory(cost_rates=CostRatesFactory(name="flat"))
    metrics.set(MetricKind.INSTANCE_COUNT, lambda slug, end: float(1 + end.minute % 3))
    metrics.set(MetricKind.RECORDS, lambda slug, end: float(end.minute))
    poll(START + timedelta(hours=5), 5 * 60)
    start, end = START + 17 * MINUTE, START + timedelta(hours=4, minutes=41)

    report = cost_report(start=start, end=end, now=START + timedelta(hours=5))

    minutes = MetricRollup.objects.filter(
        workload_class=wc, resolution=Resolution.MINUTE, bucket_start__gte=start, bucket_start__lt=end
    )
    (line,) = report.lines
    assert line.instance_seconds == Decimal(str(sum(m.instance_seconds for m in minutes)))
    assert line.records == sum(m.records for m in minutes)
    # The whole hours inside the period come from hourly rows: without their minutes, same answer.
    MetricRollup.objects.filter(
        resolution=Resolution.MINUTE,
        bucket_start__gte=START + timedelta(hours=1),
        bucket_start__lt=START + timedelta(hours=4),
    ).delete()
    again = cost_report(start=start, end=end, now=START + timedelta(hours=5))
    assert (again.lines[0].instance_seconds, again.lines[0].records) == (line.instance_seconds, line.records)


def test_totals_by_team_never_mix_currencies(paused_class, metrics):
    euro = WorkloadClassFactory(
        slug="euro-docs", owner_team="docs", cost_rates=CostRatesFactory(name="eur", currency="EUR")
    )
    unpriced = WorkloadClassFactory(slug="no-rates", owner_team="search", cost_rates=None)
    same_team = WorkloadClassFactory(slug="more-docs", owner_team="docs", cost_rates=paused_class.cost_rates)
    metrics.set(MetricKind.INSTANCE_COUNT, lambda slug, end: 1.0 if 0 <= minute_of(end) < 30 else None)
    poll(START + 30 * MINUTE, 30)

    by_class = {line.key: line for line in cost_report(start=START, end=START + 30 * MINUTE, group_by="class").lines}
    assert set(by_class) == {"paused-docs", "euro-docs", "no-rates", "more-docs"}
    assert by_class[unpriced.slug].has_rates is False and by_class[unpriced.slug].total_cost == 0
    assert by_class[euro.slug].currency == "EUR"

    teams = {
        (line.key, line.currency): line
        for line in cost_report(start=START, end=START + 30 * MINUTE, group_by="team").lines
    }
    assert set(teams) == {("docs", "USD"), ("docs", "EUR"), ("search", "")}
    docs_usd = teams[("docs", "USD")]
    assert docs_usd.classes == 2
    assert docs_usd.total_cost == by_class[paused_class.slug].total_cost + by_class[same_team.slug].total_cost
    assert docs_usd.instance_seconds == 30 * 60 * 2  # both classes at 1 instance for 30 minutes
    assert teams[("search", "")].has_rates is False


def test_group_by_must_be_class_or_team(db):
    with pytest.raises(ValueError, match="group_by"):
        cost_report(start=START, end=START + MINUTE, group_by="tier")
