"""When the instance bounds change next: window edges in their own time zones, overlaps, DST."""

from datetime import UTC, datetime, time, timedelta

from tests.factories import SchedulePolicyFactory, WorkloadClassFactory
from workloads.domain.scheduling import InstanceBounds, next_bounds_change


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_nightly_window_opens_then_closes(db):
    wc = WorkloadClassFactory(min_instances=2, max_instances=8)
    nightly = SchedulePolicyFactory(
        workload_class=wc, name="nightly", start_time=time(22), end_time=time(6), timezone="UTC", max_instances=3
    )
    change = next_bounds_change(wc.baseline_bounds, [nightly], _at("2026-03-04T12:00:00"))
    assert change.at == _at("2026-03-04T22:00:00")
    assert change.bounds == InstanceBounds(0, 3, "nightly")
    change = next_bounds_change(wc.baseline_bounds, [nightly], _at("2026-03-04T23:00:00"))  # inside: the close is next
    assert change.at == _at("2026-03-05T06:00:00")
    assert change.bounds == InstanceBounds(2, 8, "baseline")


def test_edges_are_found_in_the_windows_own_time_zone(db):
    wc = WorkloadClassFactory(min_instances=1, max_instances=4)
    # 08:00 London in summer is 07:00 UTC; only on weekdays (Saturday 2026-07-04 is skipped).
    daytime = SchedulePolicyFactory(
        workload_class=wc,
        name="daytime",
        days_of_week=[0, 1, 2, 3, 4],
        start_time=time(8),
        end_time=time(20),
        timezone="Europe/London",
        min_instances=3,
        max_instances=20,
    )
    change = next_bounds_change(wc.baseline_bounds, [daytime], _at("2026-07-03T20:00:00"))  # Friday 21:00 in London
    assert change.at == _at("2026-07-06T07:00:00")  # Monday 08:00 London
    assert change.bounds.source == "daytime"


def test_a_handover_to_the_same_numbers_is_not_a_change(db):
    wc = WorkloadClassFactory(min_instances=0, max_instances=5)
    a = SchedulePolicyFactory(
        workload_class=wc,
        name="a",
        start_time=time(0),
        end_time=time(12),
        timezone="UTC",
        min_instances=1,
        max_instances=9,
    )
    b = SchedulePolicyFactory(
        workload_class=wc,
        name="b",
        start_time=time(12),
        end_time=time(18),
        timezone="UTC",
        min_instances=1,
        max_instances=9,
    )
    change = next_bounds_change(wc.baseline_bounds, [a, b], _at("2026-03-04T06:00:00"))
    assert change.at == _at("2026-03-04T18:00:00")  # 12:00 hands a -> b with the same bounds: skipped
    assert change.bounds == InstanceBounds(0, 5, "baseline")


def test_priority_decides_what_an_edge_changes_to(db):
    wc = WorkloadClassFactory(min_instances=0, max_instances=5)
    weekend = SchedulePolicyFactory(
        workload_class=wc,
        name="weekend",
        days_of_week=[5, 6],
        start_time=time(0),
        end_time=time(0),
        timezone="UTC",
        max_instances=2,
        priority=10,
    )
    nightly = SchedulePolicyFactory(
        workload_class=wc, name="nightly", start_time=time(22), end_time=time(6), timezone="UTC", max_instances=4
    )
    # Friday 21:00: nightly opens at 22:00, then the weekend (higher priority) wins from midnight.
    change = next_bounds_change(wc.baseline_bounds, [weekend, nightly], _at("2026-03-06T21:00:00"))
    assert (change.at, change.bounds.source) == (_at("2026-03-06T22:00:00"), "nightly")
    change = next_bounds_change(wc.baseline_bounds, [weekend, nightly], change.at)
    assert (change.at, change.bounds.source) == (_at("2026-03-07T00:00:00"), "weekend")


def test_nothing_changes_without_enabled_windows(db):
    wc = WorkloadClassFactory()
    disabled = SchedulePolicyFactory(workload_class=wc, enabled=False)
    assert next_bounds_change(wc.baseline_bounds, [], _at("2026-03-04T12:00:00")) is None
    assert next_bounds_change(wc.baseline_bounds, [disabled], _at("2026-03-04T12:00:00")) is None


def test_a_window_across_a_dst_change_closes_at_local_time(db):
    wc = WorkloadClassFactory(min_instances=2, max_instances=8)
    # Paris moves to summer time on 2026-03-29 at 02:00: the night is one hour shorter in UTC.
    nightly = SchedulePolicyFactory(
        workload_class=wc,
        name="nightly",
        start_time=time(22),
        end_time=time(6),
        timezone="Europe/Paris",
        max_instances=2,
    )
    change = next_bounds_change(wc.baseline_bounds, [nightly], _at("2026-03-28T22:00:00"))  # 23:00 Paris, inside
    assert change.at == _at("2026-03-29T04:00:00")  # 06:00 CEST


def test_the_horizon_bounds_the_search(db):
    wc = WorkloadClassFactory()
    yearly_ish = SchedulePolicyFactory(workload_class=wc, days_of_week=[0], start_time=time(1), end_time=time(2))
    at = _at("2026-03-03T12:00:00")  # a Tuesday: the next Monday is 6 days away
    assert next_bounds_change(wc.baseline_bounds, [yearly_ish], at, horizon=timedelta(days=2)) is None
    assert next_bounds_change(wc.baseline_bounds, [yearly_ish], at).at == _at("2026-03-09T01:00:00")
