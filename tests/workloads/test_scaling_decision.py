"""The scaling controller's pure decision: the target formula, hysteresis, cooldowns, schedule
bounds, and a synthetic backlog timeline across a weekend window opening."""

from datetime import UTC, datetime, time, timedelta

import pytest

from workloads.domain.scaling import (
    DecisionInputs,
    ScalingSettings,
    desired_instances,
    human_count,
    hysteresis_band,
    scaling_decision,
)
from workloads.domain.scheduling import InstanceBounds, instance_bounds
from workloads.models import SchedulePolicy, WorkloadClass

BASELINE = InstanceBounds(1, 30, "baseline")
T0 = datetime(2026, 3, 6, 23, 30, tzinfo=UTC)  # a Friday, half an hour before the weekend window


def _inputs(**overrides) -> DecisionInputs:
    values = dict(
        now=T0,
        current=1,
        bounds=BASELINE,
        backlog=0.0,
        queue_age_seconds=None,
        throughput_per_instance=1.0,
        drain_target_seconds=100,
    )
    values.update(overrides)
    return DecisionInputs(**values)


@pytest.mark.parametrize(
    ("backlog", "bounds", "expected"),
    [
        (0, InstanceBounds(0, 10, "b"), 0),
        (1, InstanceBounds(0, 10, "b"), 1),  # any backlog needs an instance
        (100, InstanceBounds(0, 10, "b"), 1),  # exactly one instance's drain capacity
        (101, InstanceBounds(0, 10, "b"), 2),
        (12_000, InstanceBounds(0, 10, "b"), 10),  # clamped to max
        (0, InstanceBounds(3, 10, "b"), 3),  # clamped to min
    ],
)
def test_the_target_is_the_clamped_ceiling_of_backlog_over_drain_capacity(backlog, bounds, expected):
    assert desired_instances(backlog=backlog, throughput_per_instance=1.0, drain_target_seconds=100, bounds=bounds) == (
        expected
    )


def test_the_hysteresis_band_is_ten_percent_and_never_below_one():
    assert [hysteresis_band(n, 0.1) for n in (0, 1, 10, 11, 20, 100)] == [1, 1, 1, 2, 2, 10]


def test_differences_inside_the_band_are_ignored_and_outside_it_acted_on():
    inside = scaling_decision(_inputs(current=20, backlog=2_100))  # target 21: 1 < band 2
    assert (inside.target, inside.change, inside.blocked_by) == (21, False, "hysteresis")
    outside = scaling_decision(_inputs(current=20, backlog=2_200))  # target 22: 2 >= band 2
    assert (outside.target, outside.change) == (22, True)


def test_cooldowns_are_shorter_up_than_down():
    tuning = ScalingSettings(cooldown_up=timedelta(minutes=3), cooldown_down=timedelta(minutes=10))
    changed_4_min_ago = T0 - timedelta(minutes=4)
    up = scaling_decision(_inputs(current=5, backlog=1_000, last_change_at=changed_4_min_ago), tuning)
    down = scaling_decision(_inputs(current=5, backlog=100, last_change_at=changed_4_min_ago), tuning)
    assert (up.target, up.change) == (10, True)
    assert (down.target, down.change, down.blocked_by) == (1, False, "cooldown")
    later = scaling_decision(_inputs(current=5, backlog=100, last_change_at=T0 - timedelta(minutes=10)), tuning)
    assert later.change


def test_a_pool_outside_the_schedule_bounds_is_brought_inside_at_once():
    weekend = InstanceBounds(0, 2, "weekend")
    decision = scaling_decision(_inputs(current=15, backlog=1_500, bounds=weekend, last_change_at=T0))
    assert (decision.target, decision.change, decision.reason) == (2, True, "weekend policy: max 2")
    nightly_min = scaling_decision(_inputs(current=0, backlog=None, bounds=InstanceBounds(3, 5, "business-hours")))
    assert (nightly_min.target, nightly_min.reason) == (3, "business-hours policy: min 3")


def test_without_fresh_backlog_the_count_is_kept():
    decision = scaling_decision(_inputs(current=7, backlog=None))
    assert (decision.target, decision.change, decision.blocked_by) == (7, False, "unchanged")


def test_a_held_class_targets_zero_but_is_left_to_its_hold():
    decision = scaling_decision(_inputs(current=4, backlog=10_000, held=True))
    assert (decision.target, decision.change, decision.blocked_by) == (0, False, "held")


def test_the_reason_names_backlog_and_queue_age_in_a_readable_form():
    decision = scaling_decision(_inputs(current=1, backlog=12_000, queue_age_seconds=340.4))
    assert decision.reason == "backlog 12k, queue age 340 s (baseline: max 30)"
    assert [human_count(v) for v in (340, 1_500, 12_345, 2_000_000)] == ["340", "1.5k", "12.3k", "2M"]


def test_a_synthetic_backlog_timeline_with_a_weekend_window_and_cooldowns():
    """Minute by minute from Friday 23:30 UTC: a burst, a cooldown-delayed step up, hysteresis
    holding a small rise, a cooldown-delayed step down, and the weekend window (max 2) taking
    effect the minute it opens although the cooldown has not passed."""
    workload_class = WorkloadClass(slug="render", min_instances=1, max_instances=30)
    weekend = SchedulePolicy(
        name="weekend",
        days_of_week=[5, 6],
        start_time=time(0),
        end_time=time(0),
        timezone="UTC",
        min_instances=0,
        max_instances=2,
        enabled=True,
        priority=0,
    )
    tuning = ScalingSettings(cooldown_up=timedelta(minutes=3), cooldown_down=timedelta(minutes=10), hysteresis=0.1)

    def backlog_at(minute: int) -> float:
        if minute < 2:
            return 50
        if minute < 6:
            return 2_150 if minute >= 3 else 2_000
        if minute < 22:
            return 2_250
        return 1_500

    current, last_change = 1, None
    changes, blocked = [], {}
    for minute in range(40):
        now = T0 + timedelta(minutes=minute)
        decision = scaling_decision(
            DecisionInputs(
                now=now,
                current=current,
                bounds=instance_bounds(workload_class.baseline_bounds, [weekend], now),
                backlog=backlog_at(minute),
                queue_age_seconds=None,
                throughput_per_instance=1.0,
                drain_target_seconds=100,
                last_change_at=last_change,
            ),
            tuning,
        )
        if decision.change:
            changes.append((minute, decision.target, decision.reason))
            current, last_change = decision.target, now
        else:
            blocked[minute] = decision.blocked_by

    assert changes == [
        (2, 20, "backlog 2k"),
        (5, 22, "backlog 2.1k"),  # wanted at minute 3, held back by the 3-minute cooldown up
        (22, 15, "backlog 1.5k"),  # hysteresis ignored 22 -> 23 from minute 6 on
        (30, 2, "weekend policy: max 2"),  # 8 minutes after the last change: bounds beat the cooldown
    ]
    assert blocked[3] == blocked[4] == "cooldown"
    assert blocked[6] == blocked[21] == "hysteresis"
    assert blocked[31] == blocked[39] == "unchanged"  # at the weekend max while the backlog lasts


def test_a_pool_at_zero_with_work_waiting_scales_up_at_once_past_the_cooldown():
    tuning = ScalingSettings(cooldown_up=timedelta(minutes=3))
    just_changed = T0 - timedelta(seconds=30)
    bounds = InstanceBounds(0, 10, "nightly")
    decision = scaling_decision(_inputs(current=0, bounds=bounds, backlog=5, last_change_at=just_changed), tuning)
    assert (decision.target, decision.change) == (1, True)
    assert "from zero" in decision.reason
    # Away from zero the up-cooldown still applies.
    busy = scaling_decision(_inputs(current=1, bounds=bounds, backlog=500, last_change_at=just_changed), tuning)
    assert (busy.target, busy.change, busy.blocked_by) == (5, False, "cooldown")


def test_a_pool_still_completing_work_keeps_one_instance_when_a_sample_reads_empty():
    bounds = InstanceBounds(0, 10, "nightly")
    working = scaling_decision(_inputs(current=2, bounds=bounds, backlog=0, recent_work=40))
    assert (working.target, working.change) == (1, True)
    assert "still completing work (40 jobs lately)" in working.reason
    idle = scaling_decision(_inputs(current=2, bounds=bounds, backlog=0, recent_work=0))
    assert (idle.target, idle.change) == (0, True)
    closed = scaling_decision(_inputs(current=0, bounds=InstanceBounds(0, 0, "weekend"), backlog=0, recent_work=40))
    assert (closed.target, closed.change) == (0, False)  # a window with max 0 stays closed
