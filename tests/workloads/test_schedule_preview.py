"""The 7-day preview of the controller's targets by schedule: hourly points and exact change points
across a nightly window in another time zone and a weekend window that outranks it."""

from datetime import UTC, datetime, time, timedelta

import pytest

from tests.factories import SchedulePolicyFactory, WorkloadClassFactory
from workloads.selectors.scaling import schedule_preview

MONDAY = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # Paris is UTC+1 until the end of March


@pytest.fixture
def workload_class(db):
    workload_class = WorkloadClassFactory(
        slug="doc-render", min_instances=1, max_instances=10, throughput_per_instance=1.0, drain_target_seconds=300
    )
    SchedulePolicyFactory(
        workload_class=workload_class,
        name="nightly",
        start_time=time(22),
        end_time=time(6),
        timezone="Europe/Paris",
        min_instances=0,
        max_instances=2,
    )
    SchedulePolicyFactory(
        workload_class=workload_class,
        name="weekend",
        days_of_week=[5, 6],
        start_time=time(0),
        end_time=time(0),
        timezone="UTC",
        min_instances=0,
        max_instances=1,
        priority=1,
    )
    return workload_class


def test_the_change_points_follow_the_windows_in_their_time_zones(workload_class):
    preview = schedule_preview(workload_class, MONDAY)
    assert preview.end == MONDAY + timedelta(days=7) and len(preview.hours) == 168
    expected = []
    for day in range(5):  # Monday to Friday: baseline from 06:00 Paris, nightly from 22:00 Paris
        expected += [
            (MONDAY + timedelta(days=day, hours=5), "baseline", 1, 10, 1),
            (MONDAY + timedelta(days=day, hours=21), "nightly", 0, 2, 0),
        ]
    # Saturday 00:00 UTC the weekend window takes over; the nightly edges inside it change nothing.
    expected.append((MONDAY + timedelta(days=5), "weekend", 0, 1, 0))
    assert [(p.at, p.window, p.min_instances, p.max_instances, p.target) for p in preview.changes] == expected


def test_hourly_points_show_the_window_in_force_and_the_target_for_an_assumed_backlog(workload_class):
    preview = schedule_preview(workload_class, MONDAY, 48, backlog=5_000)  # 17 instances' worth
    by_hour = {p.at.hour + 24 * (p.at.day - MONDAY.day): (p.window, p.target) for p in preview.hours}
    assert by_hour[0] == ("nightly", 2)  # Monday 01:00 Paris
    assert by_hour[5] == ("baseline", 10)
    assert by_hour[20] == ("baseline", 10)
    assert by_hour[21] == ("nightly", 2)
    assert by_hour[29] == ("baseline", 10)


def test_a_class_without_windows_has_a_flat_preview(db):
    preview = schedule_preview(WorkloadClassFactory(min_instances=2, max_instances=4), MONDAY, 24)
    assert preview.changes == [] and {(p.window, p.target) for p in preview.hours} == {("baseline", 2)}


def test_the_horizon_is_bounded(db):
    with pytest.raises(ValueError):
        schedule_preview(WorkloadClassFactory(), MONDAY, 15 * 24)
