"""The overview's page, ordered in SQL: the same order the rows built in Python sort to (every key,
both directions, across page boundaries), the status rank equal to each row's status, and the same
queries whatever the number of classes."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import SloFactory, WorkloadClassFactory
from tests.workloads.deadletter_helpers import dead_letter_row
from workloads.models import ClassTelemetry, MetricRollup, PoolControl, PoolHold, SloAlert, SloStatus
from workloads.models.deadletters import DeadLetterStatus
from workloads.selectors.fleet import FLEET_SORT_KEYS, STATUS_SEVERITY, fleet_rows
from workloads.selectors.fleet_page import FleetFilters, filtered_classes, fleet_page, ordered_classes

NOW = timezone.now().replace(minute=30, second=0, microsecond=0)  # inside today: today's usage counts


def _alert(slo, severity):
    return SloAlert.objects.create(
        slo=slo,
        rule=f"{severity}-rule",
        severity=severity,
        factor=14.4,
        long_window_seconds=3600,
        short_window_seconds=300,
        opened_at=NOW - timedelta(minutes=5),
        opened_long_burn_rate=20,
        opened_short_burn_rate=30,
        last_long_burn_rate=20,
        last_short_burn_rate=30,
        peak_short_burn_rate=30,
        last_evaluated_at=NOW,
    )


def _status(slo, *, met=True, budget=90.0):
    SloStatus.objects.create(
        slo=slo, evaluated_at=NOW, window_start=NOW - timedelta(days=28), met=met, budget_remaining_percent=budget
    )


def _hold(wc, count):
    PoolHold.objects.create(
        workload_class=wc,
        reason="test",
        expires_at=NOW + timedelta(hours=1),
        hold_count=count,
        bounds_min=0,
        bounds_max=3,
        bounds_source="baseline",
        created_by_label="otto",
        created_at=NOW,
    )


# slug: (what the class has, the status its row shows)
CASES = {
    "a-unhealthy": ({"unhealthy": True}, "unhealthy"),
    "b-paging": ({"alert": "page"}, "breached"),
    "c-unmet": ({"met": False}, "breached"),
    "d-ticket": ({"alert": "ticket"}, "at_risk"),
    "e-low-budget": ({"budget": 10.0}, "at_risk"),
    "f-stale": ({"age": 3600}, "stale"),
    "g-new": ({"age": None}, "no_data"),
    "h-paused": ({"hold": 0}, "paused"),
    "i-held": ({"hold": 2}, "held"),
    "j-held-breached": ({"hold": 2, "alert": "page"}, "breached"),
    "k-stale-paused": ({"hold": 0, "age": 3600}, "paused"),
    "l-ok": ({}, "ok"),
    "m-unhealthy-paging": ({"unhealthy": True, "alert": "page"}, "unhealthy"),
    "n-ticket-held": ({"alert": "ticket", "hold": 1}, "at_risk"),
    "o-no-rates": ({"rates": False}, "ok"),
}


def _make_class(
    n: int, slug: str, *, age=60, alert=None, met=True, budget=90.0, hold=None, unhealthy=False, rates=True
):
    fields = {} if rates else {"cost_rates": None}
    wc = WorkloadClassFactory(
        slug=slug, name=f"{'Zeta' if n % 2 else 'alpha'} {slug}", owner_team=f"t{n % 3}", **fields
    )
    wc.tier = ("critical", "standard", "deferrable")[n % 3]
    wc.save(update_fields=["tier"])
    slo = SloFactory(workload_class=wc)
    _status(slo, met=met, budget=budget + n)
    if alert:
        _alert(slo, alert)
    if age is not None:
        ClassTelemetry.objects.create(
            workload_class=wc,
            fetched_at=NOW,
            newest_sample_at=NOW - timedelta(seconds=age),
            oldest_unacked_age_seconds=None if n % 4 == 0 else float(n % 5),
            backlog=None if n % 5 == 0 else float(n % 3),
            latency_p95_seconds=float(n % 2),
            instances=float(n % 4),
        )
    if hold is not None:
        _hold(wc, hold)
    if unhealthy:
        PoolControl.objects.create(workload_class=wc, health="unhealthy", health_detail="crash-looping")
    for _ in range(n % 3):
        dead_letter_row(wc, status=DeadLetterStatus.NEW if n % 2 else DeadLetterStatus.HELD)
    if n % 4:  # today's usage, whichever resolution the cost reads for the last half hour
        for resolution, start in (("hour", NOW.replace(minute=0)), ("minute", NOW - timedelta(minutes=10))):
            MetricRollup.objects.create(
                workload_class=wc,
                resolution=resolution,
                bucket_start=start,
                fetched_at=NOW,
                instance_seconds=100.0 * (n % 4),
                records=n,
            )
    return wc


@pytest.fixture
def varied_fleet(db):
    return [_make_class(n, slug, **setup) for n, (slug, (setup, _)) in enumerate(CASES.items())]


def test_the_sql_status_rank_is_the_status_each_row_shows(varied_fleet):
    rows = {row.workload_class.slug: row for row in fleet_rows(now=NOW)}
    assert {slug: row.status for slug, row in rows.items()} == {slug: status for slug, (_, status) in CASES.items()}
    assert len({row.live.cost_today for row in rows.values()}) > 3  # the cost order has something to order
    ranked = ordered_classes(filtered_classes(FleetFilters()), sort="status", now=NOW)
    assert {wc.slug: wc.status_rank for wc in ranked} == {slug: STATUS_SEVERITY[rows[slug].status] for slug in CASES}


@pytest.mark.parametrize("sort", [*FLEET_SORT_KEYS, *(f"-{key}" for key in FLEET_SORT_KEYS)])
def test_pages_follow_the_order_the_rows_sort_to(varied_fleet, sort):
    expected = [row.workload_class.slug for row in fleet_rows(now=NOW, sort=sort)]
    shown = []
    for number in (1, 2, 3, 4):
        page = fleet_page(now=NOW, filters=FleetFilters(), sort=sort, number=number, per_page=4)
        assert len(page.rows) == (4 if number < 4 else 3)
        shown += [row.workload_class.slug for row in page.rows]
    assert shown == expected
    if sort == "status":
        assert shown[:3] == ["a-unhealthy", "m-unhealthy-paging", "b-paging"]  # what is wrong comes first


def test_filters_narrow_the_count_and_the_pages(varied_fleet):
    page = fleet_page(now=NOW, filters=FleetFilters(team="t1"), per_page=2)
    expected = [row.workload_class.slug for row in fleet_rows(now=NOW, team="t1")]
    assert page.page.paginator.count == len(expected) == 5
    assert [row.workload_class.slug for row in page.rows] == expected[:2]
    assert FleetFilters(tier="critical").active and not FleetFilters().active
    tiers = fleet_page(now=NOW, filters=FleetFilters(tier="deferrable", search="HELD"), per_page=50)
    assert [row.workload_class.slug for row in tiers.rows] == ["i-held"]


def test_a_bad_page_number_gives_the_nearest_page(varied_fleet):
    assert fleet_page(now=NOW, filters=FleetFilters(), number="x", per_page=4).page.number == 1
    assert fleet_page(now=NOW, filters=FleetFilters(), number="99", per_page=4).page.number == 4


def test_an_empty_fleet_is_one_empty_page(db):
    page = fleet_page(now=NOW, filters=FleetFilters())
    assert page.rows == [] and page.page.paginator.count == 0


@pytest.mark.parametrize("sort", ["status", "-budget", "cost", "-dead_letters"])
def test_a_page_reads_the_same_queries_whatever_the_fleet(db, sort):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            page = fleet_page(now=NOW, filters=FleetFilters(), sort=sort, per_page=5)
            assert len(page.rows) == 5
        return len(captured.captured_queries)

    for n in range(8):
        _make_class(n, f"few-{n}", alert="ticket" if n % 3 == 0 else None, budget=float(n))
    few = queries()
    for n in range(40):
        _make_class(n, f"many-{n}", hold=n % 2 if n % 5 == 0 else None)
    assert queries() == few
