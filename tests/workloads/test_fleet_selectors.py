"""The overview's read side: one row per class, sorted with missing values last, in a fixed
number of queries."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.factories import SchedulePolicyFactory, SloFactory, WorkloadClassFactory
from workloads.scheduling import InstanceBounds
from workloads.selectors.fleet import (
    FleetRow,
    FleetStatus,
    LiveValues,
    class_events,
    fleet_rows,
    fleet_teams,
    sort_fleet_rows,
)

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def _row(slug, **live):
    wc = WorkloadClassFactory.build(slug=slug, name=slug.title(), owner_team="t")
    return FleetRow(wc, InstanceBounds(0, 1, "baseline"), None, None, LiveValues(**live))


def test_missing_values_sort_last_in_both_directions():
    rows = [_row("a-aa", backlog=None), _row("b-bb", backlog=5), _row("c-cc", backlog=50), _row("d-dd")]
    assert [r.workload_class.slug for r in sort_fleet_rows(rows, "backlog")] == ["b-bb", "c-cc", "a-aa", "d-dd"]
    assert [r.workload_class.slug for r in sort_fleet_rows(rows, "-backlog")] == ["c-cc", "b-bb", "a-aa", "d-dd"]


def test_status_sorts_worst_first():
    rows = [
        _row("ok-one", status=FleetStatus.OK),
        _row("stale-one", status=FleetStatus.STALE),
        _row("breached-one", status=FleetStatus.BREACHED),
        _row("new-one"),
        _row("risky-one", status=FleetStatus.AT_RISK),
    ]
    assert [r.workload_class.slug for r in sort_fleet_rows(rows, "status")] == [
        "breached-one",
        "risky-one",
        "stale-one",
        "new-one",
        "ok-one",
    ]


def test_unknown_sort_keys_are_refused():
    with pytest.raises(ValueError):
        sort_fleet_rows([], "password")


def test_rows_carry_registry_values(db):
    wc = WorkloadClassFactory(slug="rowed", owner_team="search", tier="critical", min_instances=1, max_instances=6)
    SloFactory(workload_class=wc, kind="queue_age", percentile=Decimal("95"), threshold_seconds=30)
    SchedulePolicyFactory(workload_class=wc, name="night", start_time="10:00", end_time="14:00", max_instances=2)
    WorkloadClassFactory(slug="other-team", owner_team="docs")
    (row,) = fleet_rows(now=NOW, team="search")
    assert row.workload_class.slug == "rowed"
    assert row.bounds == InstanceBounds(0, 2, "night")
    assert row.queue_age_slo.threshold_seconds == 30 and row.latency_slo is None
    assert row.live == LiveValues()  # no telemetry yet: no data, not zeros
    assert row.live.status is FleetStatus.NO_DATA
    assert fleet_teams() == ["docs", "search"]


def test_the_query_count_is_fixed(db, django_assert_num_queries):
    for _ in range(15):
        wc = WorkloadClassFactory()
        SloFactory(workload_class=wc)
        SchedulePolicyFactory(workload_class=wc)
    with django_assert_num_queries(3):  # classes + rates, SLOs, schedules
        rows = fleet_rows(now=NOW, sort="-name")
        for row in rows:
            row.workload_class.cost_rates.currency  # noqa: B018 - touching what the template reads
    assert len(rows) == 15


def test_class_events_are_newest_first_and_bounded(db, admin_user):
    from workloads.services.classes import workload_class_update

    wc = WorkloadClassFactory()
    for count in range(2, 6):
        workload_class_update(actor=admin_user, workload_class=wc, fields={"max_instances": count})
    events = class_events(workload_class=wc, limit=3)
    assert len(events) == 3
    assert events[0].changes["max_instances"][1] == 5
