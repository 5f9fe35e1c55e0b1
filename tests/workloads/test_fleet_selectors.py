"""The overview's read side: one row per class with its live telemetry, sorted with missing values
last, in a fixed number of queries; the actions and changes that mark a class's charts."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from tests.dashboards.helpers import registered_steps_handler, request_steps_action
from tests.factories import SchedulePolicyFactory, SloFactory, WorkloadClassFactory
from workloads.domain.scheduling import InstanceBounds
from workloads.selectors.fleet import (
    FleetRow,
    class_actions_in_range,
    class_config_changes,
    fleet_rows,
    fleet_teams,
    sort_fleet_rows,
)
from workloads.selectors.telemetry import ClassStatus, ClassTelemetryRow

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def _row(slug, status=ClassStatus.OK, **live):
    wc = WorkloadClassFactory.build(slug=slug, name=slug.title(), owner_team="t")
    return FleetRow(
        wc,
        InstanceBounds(0, 1, "baseline"),
        ClassTelemetryRow(workload_class=wc, status=status, status_reason="", **live),
    )


def test_missing_values_sort_last_in_both_directions():
    rows = [_row("a-aa", backlog=None), _row("b-bb", backlog=5), _row("c-cc", backlog=50), _row("d-dd")]
    assert [r.workload_class.slug for r in sort_fleet_rows(rows, "backlog")] == ["b-bb", "c-cc", "a-aa", "d-dd"]
    assert [r.workload_class.slug for r in sort_fleet_rows(rows, "-backlog")] == ["c-cc", "b-bb", "a-aa", "d-dd"]


def test_status_sorts_worst_first():
    rows = [
        _row("ok-one", status=ClassStatus.OK),
        _row("stale-one", status=ClassStatus.STALE),
        _row("breached-one", status=ClassStatus.BREACHED),
        _row("new-one", status=ClassStatus.NO_DATA),
        _row("risky-one", status=ClassStatus.AT_RISK),
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


def test_over_slo_flags_compare_live_values_with_the_thresholds():
    over = _row("over", queue_age_seconds=61, queue_age_threshold_seconds=60, latency_p95_seconds=1.0)
    assert over.queue_age_over_slo and not over.latency_over_slo  # no latency SLO: never "over"
    assert not _row("under", queue_age_seconds=60, queue_age_threshold_seconds=60).queue_age_over_slo
    assert not _row("unknown", queue_age_threshold_seconds=60).queue_age_over_slo


def test_rows_carry_registry_values_and_no_data_before_the_first_poll(db):
    wc = WorkloadClassFactory(slug="rowed", owner_team="search", tier="critical", min_instances=1, max_instances=6)
    SloFactory(workload_class=wc, kind="queue_age", percentile=Decimal("95"), threshold_seconds=30)
    SchedulePolicyFactory(workload_class=wc, name="night", start_time="10:00", end_time="14:00", max_instances=2)
    WorkloadClassFactory(slug="other-team", owner_team="docs")
    (row,) = fleet_rows(now=NOW, team="search")
    assert row.workload_class.slug == "rowed"
    assert row.bounds == InstanceBounds(0, 2, "night")
    assert row.live.queue_age_threshold_seconds == 30 and row.live.latency_threshold_seconds is None
    assert row.live.status is ClassStatus.NO_DATA and not row.has_data
    assert (row.live.queue_age_seconds, row.live.backlog, row.live.instances) == (None, None, None)
    assert row.target_instances is None and not row.drifted  # the scaling controller's, later
    assert fleet_teams() == ["docs", "search"]


def test_the_query_count_is_fixed(db, django_assert_num_queries):
    for _ in range(15):
        wc = WorkloadClassFactory()
        SloFactory(workload_class=wc)
        SchedulePolicyFactory(workload_class=wc)
    # Classes with rates, live values and pool control, SLOs with status, schedules, open alerts,
    # today's usage, open pauses, dead letters needing attention and their trend.
    with django_assert_num_queries(8):
        rows = fleet_rows(now=NOW, sort="-name")
        for row in rows:
            row.workload_class.cost_rates.currency  # noqa: B018 - touching what the template reads
            assert row.target_instances is None and not row.drifted and not row.paused
    assert len(rows) == 15


def test_config_changes_are_the_class_s_own_newest_first(db, admin_user):
    from workloads.services.classes import workload_class_update

    wc = WorkloadClassFactory()
    other = WorkloadClassFactory()
    for count in range(2, 6):
        workload_class_update(actor=admin_user, workload_class=wc, fields={"max_instances": count})
    workload_class_update(actor=admin_user, workload_class=other, fields={"max_instances": 3})
    events = class_config_changes(workload_class=wc, limit=3)
    assert [e.changes["max_instances"][1] for e in events] == [5, 4, 3]


def test_actions_in_range_include_those_that_end_in_it(db, operator):
    wc = WorkloadClassFactory()
    with registered_steps_handler():
        with time_machine.travel(NOW - timedelta(hours=3), tick=False):
            before = request_steps_action(actor=operator, items=["a"], workload_class=wc)
        with time_machine.travel(NOW - timedelta(minutes=90), tick=False):
            ends_inside = request_steps_action(actor=operator, items=["a"], workload_class=wc)
        with time_machine.travel(NOW - timedelta(minutes=30), tick=False):
            inside = request_steps_action(actor=operator, items=["a"], workload_class=wc)
            request_steps_action(actor=operator, items=["a"])  # another class's (none)
    type(ends_inside).objects.filter(pk=ends_inside.pk).update(finished_at=NOW - timedelta(minutes=10))
    found = class_actions_in_range(workload_class=wc, start=NOW - timedelta(hours=1), end=NOW)
    assert [a.pk for a in found] == [inside.pk, ends_inside.pk]
    assert before.pk not in [a.pk for a in found]
