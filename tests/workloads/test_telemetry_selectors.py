"""The read side the dashboards use: fleet overview rows and class detail charts."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.factories import CostRatesFactory, SloFactory, WorkloadClassFactory
from tests.shared_rows import shared_rows
from tests.workloads.telemetry_doubles import FakeMetrics, dead_lettered_work, distribution, installed_metrics
from workloads.domain import histogram
from workloads.models import SloAlert, WorkloadClass
from workloads.providers.base import MetricKind
from workloads.selectors.series import CHART_RANGES, class_series
from workloads.selectors.telemetry import class_telemetry, fleet_overview
from workloads.services.polling import metrics_poll
from workloads.services.slo_evaluation import slo_alerts_evaluate

NOW = datetime(2026, 3, 2, 10, 0, 20, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def open_alert(slo, severity: str):
    rule = "page-1h-5m" if severity == "page" else "ticket-3d-6h"
    return SloAlert.objects.create(
        slo=slo,
        rule=rule,
        severity=severity,
        factor=14.4,
        long_window_seconds=3600,
        short_window_seconds=300,
        opened_at=NOW - 5 * MINUTE,
        opened_long_burn_rate=20,
        opened_short_burn_rate=30,
        last_long_burn_rate=20,
        last_short_burn_rate=30,
        peak_short_burn_rate=30,
        last_evaluated_at=NOW,
    )


@pytest.fixture(scope="module")
def shared_fleet(django_db_setup, django_db_blocker):
    """Six classes in every state with three hours of data, built once for the module
    (tests/shared_rows.py): the tests read it, each in its own savepoint."""
    with shared_rows(django_db_blocker), installed_metrics(FakeMetrics()) as metrics:
        yield _build_fleet(metrics), metrics


@pytest.fixture
def metrics(shared_fleet):
    with installed_metrics(shared_fleet[1]) as fake:
        yield fake


@pytest.fixture
def fleet(shared_fleet, db, metrics):
    return shared_fleet[0]


def _build_fleet(metrics):
    classes = {}
    for slug in ["healthy", "stale", "new-class", "paging", "ticketed", "low-budget"]:
        wc = WorkloadClassFactory(slug=slug, cost_rates=CostRatesFactory(name="flat", vcpu_second=Decimal("0.0001")))
        SloFactory(
            workload_class=wc,
            kind="queue_age",
            percentile=Decimal("95"),
            threshold_seconds=60,
            target_percent=Decimal("99"),
        )
        SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99"))
        classes[slug] = wc

    def alive(slug, end):
        if slug == "new-class":
            return False
        return slug != "stale" or end <= NOW - timedelta(minutes=40)

    metrics.set(
        MetricKind.OLDEST_UNACKED_AGE, lambda slug, end: float((end - MINUTE).minute) if alive(slug, end) else None
    )
    metrics.set(MetricKind.UNDELIVERED_MESSAGES, lambda slug, end: 42.0 if alive(slug, end) else None)
    metrics.set(MetricKind.DEAD_LETTER_BACKLOG, lambda slug, end: 3.0 if alive(slug, end) else None)
    metrics.set(MetricKind.INSTANCE_COUNT, lambda slug, end: 2.0 if alive(slug, end) else None)
    metrics.set(MetricKind.COMPLETED, lambda slug, end: 100.0 if alive(slug, end) else None)
    # low-budget: 0.8 % failures over the window leave it 20 % of a 1 % budget.
    metrics.set(MetricKind.FAILED, lambda slug, end: 0.8 if slug == "low-budget" and alive(slug, end) else None)
    # ... each a unit of work dead-lettered (4 every 5 minutes: 0.8 a minute).
    dead_lettered_work(
        classes["low-budget"],
        lambda slug, end: 4 if end.minute % 5 == 0 else 0,
        start=NOW.replace(second=0, microsecond=0) - 3 * 60 * MINUTE,
        end=NOW,
    )
    metrics.set(
        MetricKind.COMPLETION_LATENCY,
        lambda slug, end: distribution([0.1] * 90 + [5.0] * 10) if alive(slug, end) else None,
    )
    metrics_poll(now=NOW, window_minutes=3 * 60)
    slo_alerts_evaluate(now=NOW)
    open_alert(classes["paging"].slos.get(kind="success_ratio"), "page")
    open_alert(classes["ticketed"].slos.get(kind="queue_age"), "ticket")
    return classes


def test_the_overview_has_a_status_for_every_class(fleet):
    rows = {row.workload_class.slug: row for row in fleet_overview(now=NOW)}
    assert {slug: row.status for slug, row in rows.items()} == {
        "healthy": "ok",
        "stale": "stale",
        "new-class": "no_data",
        "paging": "breached",
        "ticketed": "at_risk",
        "low-budget": "at_risk",
    }
    assert "40 min" in rows["stale"].status_reason
    assert "budget left" in rows["low-budget"].status_reason


def test_an_overview_row_holds_the_live_values(fleet):
    row = next(r for r in fleet_overview(now=NOW) if r.workload_class.slug == "healthy")
    assert row.queue_age_seconds == 59  # the latest minute, 09:59
    assert row.queue_age_threshold_seconds == 60
    assert (row.backlog, row.dead_letter_backlog, row.instances) == (42, 3, 2)
    # p95 of 90 x 0.1 s and 10 x 5 s per minute: inside the bucket that holds 5 s.
    assert histogram.bucket_index(row.latency_p95_seconds) == histogram.bucket_index(5.0)
    assert row.error_budget_remaining_percent == 100 and row.worst_slo_kind in ("queue_age", "success_ratio")
    # Today so far (data since 07:00): 3 hours at 2 instances x (1 vCPU x 0.0001 + 0.5 GiB x 0.000002).
    assert row.cost_today == Decimal("2.181600")
    assert row.metric_age_seconds == 20
    stale = next(r for r in fleet_overview(now=NOW) if r.workload_class.slug == "stale")
    assert stale.queue_age_seconds == 19  # its last minute with data, still shown (as stale)


def test_the_overview_costs_the_same_queries_for_many_classes(fleet, django_assert_num_queries, metrics):
    few = WorkloadClass.objects.filter(slug__in=["healthy", "stale"]).order_by("slug")
    with django_assert_num_queries(4):
        fleet_overview(now=NOW, classes=few)
    for n in range(10):
        SloFactory(workload_class=WorkloadClassFactory(slug=f"extra-{n:02d}"), kind="success_ratio")
    metrics_poll(now=NOW + MINUTE, window_minutes=5)
    with django_assert_num_queries(4):
        assert len(fleet_overview(now=NOW + MINUTE)) == 16


@pytest.mark.parametrize(
    ("range_key", "points", "step", "resolution"),
    [
        ("1h", 60, 60, "minute"),
        ("6h", 180, 120, "minute"),
        ("24h", 288, 300, "minute"),
        ("7d", 168, 3600, "hour"),
        ("30d", 240, 10800, "hour"),
    ],
)
def test_class_detail_series_have_a_bounded_number_of_points(fleet, range_key, points, step, resolution):
    detail = class_telemetry(workload_class=fleet["healthy"], range_key=range_key, now=NOW)
    # Steps are aligned to the epoch, so a range that does not start on a step adds an edge step.
    assert points <= len(detail.series.timestamps) <= points + 1
    assert detail.series.step_seconds == step and detail.series.resolution == resolution
    assert all(len(values) == len(detail.series.timestamps) for values in detail.series.values.values())
    assert detail.thresholds["oldest_unacked_age"] == 60
    assert {card.slo.kind for card in detail.slo_cards} == {"queue_age", "success_ratio"}
    assert set(CHART_RANGES) == {"1h", "6h", "24h", "7d", "30d"}


def test_class_detail_values_follow_the_rollups(fleet):
    detail = class_telemetry(workload_class=fleet["healthy"], range_key="1h", now=NOW)
    values = detail.series.values
    assert values["oldest_unacked_age"][-1] == 59 and values["oldest_unacked_age"][0] == 0
    assert values["completed"][-1] == 100 and values["instances"][-1] == 2
    assert values["cost"][-1] == pytest.approx(120 * (0.0001 + 0.5 * 0.000002))
    hourly = class_telemetry(workload_class=fleet["healthy"], range_key="7d", now=NOW)
    assert [v for v in hourly.series.values["completed"] if v is not None] == [6000] * 3  # 07:00-09:59
    assert hourly.series.newest_sample_at == NOW.replace(second=0)
    chart = detail.chart_data(("completed", "failed"))
    assert chart["x"] == detail.series.timestamps and set(chart["series"]) == {"completed", "failed"}


def test_a_stale_class_keeps_gaps_as_gaps(fleet):
    series = class_series(workload_class=fleet["stale"], start=NOW - timedelta(hours=1), end=NOW, now=NOW)
    assert series.values["backlog"][-1] is None and series.values["backlog"][0] == 42
    assert series.points("backlog")[-1][0] == NOW.replace(second=0) - 41 * MINUTE
