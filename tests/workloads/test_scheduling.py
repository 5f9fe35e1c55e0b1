"""Schedule windows: overnight windows, time zones and deterministic overlap resolution."""

from datetime import UTC, datetime, time

from tests.factories import SchedulePolicyFactory, WorkloadClassFactory
from workloads.domain.scheduling import active_policy, instance_bounds, is_active_at


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_an_overnight_window_spans_midnight_in_its_time_zone(db):
    # 22:00-06:00 Paris on Fridays (day 4) = 21:00 UTC Friday to 05:00 UTC Saturday in winter.
    policy = SchedulePolicyFactory(days_of_week=[4], start_time=time(22), end_time=time(6), timezone="Europe/Paris")
    assert not is_active_at(policy, _at("2026-11-27T20:59:00"))
    assert is_active_at(policy, _at("2026-11-27T21:00:00"))
    assert is_active_at(policy, _at("2026-11-28T04:59:00"))  # Saturday morning, opened on Friday
    assert not is_active_at(policy, _at("2026-11-28T05:00:00"))
    assert not is_active_at(policy, _at("2026-11-28T21:30:00"))  # Saturday is not a listed day


def test_equal_start_and_end_means_the_whole_day(db):
    policy = SchedulePolicyFactory(days_of_week=[5, 6], start_time=time(0), end_time=time(0), timezone="UTC")
    assert is_active_at(policy, _at("2026-11-28T00:00:00"))
    assert is_active_at(policy, _at("2026-11-29T23:59:59"))
    assert not is_active_at(policy, _at("2026-11-30T00:00:00"))


def test_a_disabled_window_is_never_active(db):
    policy = SchedulePolicyFactory(enabled=False, start_time=time(0), end_time=time(0))
    assert not is_active_at(policy, _at("2026-11-28T12:00:00"))


def test_overlaps_resolve_by_priority_then_shorter_window_then_name(db):
    workload_class = WorkloadClassFactory()
    every_day = [0, 1, 2, 3, 4, 5, 6]
    nightly = SchedulePolicyFactory(
        workload_class=workload_class,
        name="nightly",
        days_of_week=every_day,
        start_time=time(22),
        end_time=time(6),
        max_instances=4,
    )
    weekend = SchedulePolicyFactory(
        workload_class=workload_class,
        name="weekend",
        days_of_week=[5, 6],
        start_time=time(0),
        end_time=time(0),
        max_instances=2,
    )
    saturday_night = _at("2026-11-28T23:00:00")
    policies = [weekend, nightly]
    # Same priority: the shorter (more specific) nightly window wins, whatever the list order.
    assert active_policy(policies, saturday_night) == nightly
    assert active_policy(list(reversed(policies)), saturday_night) == nightly
    weekend.priority = 10
    assert active_policy(policies, saturday_night) == weekend
    twin = SchedulePolicyFactory(
        workload_class=workload_class, name="a-twin", days_of_week=every_day, start_time=time(22), end_time=time(6)
    )
    assert active_policy([nightly, twin], saturday_night) == twin  # same priority and length: by name


def test_bounds_fall_back_to_the_class_baseline(db):
    workload_class = WorkloadClassFactory(min_instances=1, max_instances=9)
    nightly = SchedulePolicyFactory(
        workload_class=workload_class,
        name="nightly",
        start_time=time(22),
        end_time=time(6),
        min_instances=0,
        max_instances=3,
    )
    assert instance_bounds(workload_class.baseline_bounds, [nightly], _at("2026-11-28T12:00:00")).max_instances == 9
    night = instance_bounds(workload_class.baseline_bounds, [nightly], _at("2026-11-28T23:00:00"))
    assert (night.min_instances, night.max_instances, night.source) == (0, 3, "nightly")
