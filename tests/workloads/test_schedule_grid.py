"""The schedules screen's week grid: bounds per hour from workloads.domain.scheduling, overlaps resolved
by its precedence, changes inside an hour, the viewer's time zone."""

from datetime import UTC, datetime, time

import pytest

from tests.factories import SchedulePolicyFactory, WorkloadClassFactory
from workloads.domain.scheduling import InstanceBounds
from workloads.selectors.schedules import target_preview, week_grid

WEDNESDAY = datetime(2026, 3, 4, 12, 30, tzinfo=UTC)  # before Europe's DST change on 29 March


@pytest.fixture
def scheduled(db):
    wc = WorkloadClassFactory(slug="gridded", min_instances=1, max_instances=9)
    SchedulePolicyFactory(
        workload_class=wc,
        name="nightly",
        start_time=time(22),
        end_time=time(6),
        timezone="UTC",
        min_instances=0,
        max_instances=2,
        priority=0,
    )
    SchedulePolicyFactory(
        workload_class=wc,
        name="weekend",
        days_of_week=[5, 6],
        start_time=time(0),
        end_time=time(0),
        timezone="UTC",
        min_instances=3,
        max_instances=5,
        priority=10,
    )
    return wc


def _cell(grid, day: int, hour: int):
    return grid.days[day].cells[hour]


def test_each_hour_shows_the_bounds_the_winning_window_sets(scheduled):
    grid = week_grid(workload_class=scheduled, tz_name="UTC", now=WEDNESDAY)
    assert [row.day.isoformat() for row in grid.days][0] == "2026-03-02"  # the current week, from Monday
    assert all(len(row.cells) == 24 for row in grid.days) and len(grid.days) == 7
    assert _cell(grid, 0, 3).bounds == InstanceBounds(0, 2, "nightly")
    assert _cell(grid, 0, 12).bounds == InstanceBounds(1, 9, "baseline") and _cell(grid, 0, 12).colour == 0
    saturday_night = _cell(grid, 5, 23)
    assert saturday_night.bounds == InstanceBounds(3, 5, "weekend")
    assert saturday_night.open_windows == ("weekend", "nightly") and saturday_night.overlap
    assert not _cell(grid, 4, 23).overlap  # Friday night: only the nightly window


def test_overlaps_are_listed_as_runs_with_the_reason_the_winner_wins(scheduled):
    grid = week_grid(workload_class=scheduled, tz_name="UTC", now=WEDNESDAY)
    runs = [(o.day.weekday(), o.start_hour, o.end_hour, o.winner, o.losers, o.why) for o in grid.overlaps]
    assert runs == [
        (5, 0, 6, "weekend", ("nightly",), "higher priority (10 > 0)"),
        (5, 22, 24, "weekend", ("nightly",), "higher priority (10 > 0)"),
        (6, 0, 6, "weekend", ("nightly",), "higher priority (10 > 0)"),
        (6, 22, 24, "weekend", ("nightly",), "higher priority (10 > 0)"),
    ]
    assert [entry.policy.name for entry in grid.legend] == ["weekend", "nightly"]  # the order they win


def test_now_and_the_next_change(scheduled):
    grid = week_grid(workload_class=scheduled, tz_name="UTC", now=WEDNESDAY)
    now_cells = [(d, h) for d, row in enumerate(grid.days) for h, cell in enumerate(row.cells) if cell.is_now]
    assert now_cells == [(2, 12)]
    assert grid.now_bounds == InstanceBounds(1, 9, "baseline")
    assert grid.next_change.at == datetime(2026, 3, 4, 22, tzinfo=UTC)
    assert grid.next_change.bounds == InstanceBounds(0, 2, "nightly")


def test_a_change_inside_an_hour_is_shown_in_that_hour(db):
    wc = WorkloadClassFactory(min_instances=1, max_instances=4)
    SchedulePolicyFactory(
        workload_class=wc,
        name="lunch",
        start_time=time(12, 30),
        end_time=time(13, 15),
        timezone="UTC",
        min_instances=6,
        max_instances=8,
    )
    grid = week_grid(workload_class=wc, tz_name="UTC", now=WEDNESDAY)
    noon, one = _cell(grid, 0, 12), _cell(grid, 0, 13)
    assert noon.bounds.source == "baseline"
    assert [(s.at.strftime("%H:%M"), s.bounds.max_instances) for s in noon.shifts] == [("12:30", 8)]
    assert one.bounds.source == "lunch" and [(s.at.strftime("%H:%M"), s.bounds.source) for s in one.shifts] == [
        ("13:15", "baseline")
    ]


def test_hours_are_in_the_viewers_time_zone(db):
    wc = WorkloadClassFactory()
    SchedulePolicyFactory(
        workload_class=wc,
        name="paris-nights",
        start_time=time(22),
        end_time=time(6),
        timezone="Europe/Paris",
        max_instances=2,
    )
    in_utc = week_grid(workload_class=wc, tz_name="UTC", now=WEDNESDAY)
    in_paris = week_grid(workload_class=wc, tz_name="Europe/Paris", now=WEDNESDAY)
    assert _cell(in_utc, 0, 21).window == "paris-nights" and _cell(in_utc, 0, 20).window is None  # CET = UTC+1
    assert _cell(in_paris, 0, 22).window == "paris-nights" and _cell(in_paris, 0, 21).window is None
    assert in_paris.tz_name == "Europe/Paris" and in_paris.week_start.utcoffset().total_seconds() == 3600


def test_a_week_with_a_dst_change_still_has_every_hour(db):
    wc = WorkloadClassFactory()
    SchedulePolicyFactory(
        workload_class=wc,
        name="paris-nights",
        start_time=time(22),
        end_time=time(6),
        timezone="Europe/Paris",
        max_instances=2,
    )
    grid = week_grid(workload_class=wc, tz_name="Europe/Paris", now=datetime(2026, 3, 28, 12, tzinfo=UTC))
    sunday = grid.days[6]
    assert sunday.day.isoformat() == "2026-03-29" and len(sunday.cells) == 24
    assert sunday.cells[1].window == "paris-nights" and sunday.cells[5].window == "paris-nights"
    assert sunday.cells[6].window is None  # 06:00 local, summer time now


def test_disabled_windows_never_govern_and_have_no_colour(db):
    wc = WorkloadClassFactory()
    SchedulePolicyFactory(workload_class=wc, name="off", enabled=False, start_time=time(0), end_time=time(0))
    grid = week_grid(workload_class=wc, tz_name="UTC", now=WEDNESDAY)
    assert all(cell.window is None for row in grid.days for cell in row.cells)
    assert [(e.policy.name, e.colour) for e in grid.legend] == [("off", 0)]
    assert grid.next_change is None


def test_the_controller_preview_covers_the_week_from_the_current_hour(scheduled):
    preview = target_preview(workload_class=scheduled, now=WEDNESDAY)
    assert len(preview.hours) == 168 and preview.hours[0].at == WEDNESDAY.replace(minute=0, second=0, microsecond=0)
    assert preview.backlog_source == "none"  # no telemetry: each target is its window's minimum
    assert all(point.target == point.min_instances for point in preview.hours)
    assert preview.changes and all(a.at < b.at for a, b in zip(preview.changes, preview.changes[1:], strict=False))
    assert preview.peak == max(point.target for point in preview.hours)


def test_the_controller_preview_sizes_for_a_fresh_backlog(scheduled):
    from tests.workloads.pools import fresh_backlog

    fresh_backlog(scheduled, backlog=1_000_000, queue_age=600, now=WEDNESDAY)
    preview = target_preview(workload_class=scheduled, now=WEDNESDAY)
    assert preview.backlog_source == "latest poll"
    assert all(point.target == point.max_instances for point in preview.hours)  # a huge backlog: the max
