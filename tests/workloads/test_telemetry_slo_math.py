"""SLO arithmetic against hand-computed cases (no database)."""

import pytest

from workloads.domain import slo
from workloads.domain.slo import BURN_RULES, DAY, HOUR, MINUTE, Events

PAGE_FAST, PAGE_SLOW, TICKET = BURN_RULES
WINDOW_28D = 28 * DAY


def test_budget_fraction_is_exact_in_decimal():
    assert slo.budget_fraction("99.9") == 0.001
    assert slo.budget_fraction(99) == 0.01


def test_exactly_at_target_meets_the_slo_with_nothing_left():
    # 99 % target, 1000 events, 10 bad: the budget is exactly 10 bad events, all spent.
    budget = slo.error_budget(Events(good=990, total=1000), budget=0.01, window_seconds=WINDOW_28D, current_burn_rate=1)
    assert budget.attainment == pytest.approx(0.99)
    assert budget.met is True
    assert budget.allowed == pytest.approx(10)
    assert budget.consumed == 10
    assert budget.remaining == 0
    assert budget.remaining_fraction == 0
    assert budget.exhaustion_seconds == 0


def test_budget_exhausted_goes_negative_and_is_not_met():
    # 99.5 % target, 2000 events, 25 bad: allowed 10, consumed 25, remaining -15 (-150 %).
    budget = slo.error_budget(
        Events(good=1975, total=2000), budget=0.005, window_seconds=WINDOW_28D, current_burn_rate=3
    )
    assert budget.met is False
    assert budget.allowed == pytest.approx(10)
    assert budget.remaining == pytest.approx(-15)
    assert budget.remaining_fraction == pytest.approx(-1.5)
    assert budget.exhaustion_seconds == 0


def test_time_to_exhaustion_at_the_current_burn():
    # Half the budget left, burning at 2x: half a window / 2 = a quarter of 28 days = 7 days.
    budget = slo.error_budget(Events(good=995, total=1000), budget=0.01, window_seconds=WINDOW_28D, current_burn_rate=2)
    assert budget.remaining_fraction == pytest.approx(0.5)
    assert budget.exhaustion_seconds == pytest.approx(7 * DAY)
    calm = slo.error_budget(Events(good=995, total=1000), budget=0.01, window_seconds=WINDOW_28D, current_burn_rate=0)
    assert calm.exhaustion_seconds is None


def test_no_traffic_leaves_the_budget_whole():
    budget = slo.error_budget(Events(), budget=0.01, window_seconds=WINDOW_28D, current_burn_rate=0)
    assert budget.attainment is None
    assert budget.met is True
    assert budget.remaining_fraction == 1.0
    assert budget.exhaustion_seconds is None
    assert slo.burn_rate(Events(), 0.01) == 0.0


def test_burn_rate_is_bad_share_over_budget():
    assert slo.burn_rate(Events(good=900, total=1000), 0.01) == pytest.approx(10)
    assert slo.burn_rate(Events(good=1000, total=1000), 0.01) == 0


def windows(**by_window):
    return {seconds: by_window.get(slo.window_label(seconds), Events()) for seconds in slo.ALERT_WINDOWS}


def test_a_page_needs_both_windows_over_the_factor():
    budget = 0.001  # 99.9 %: 14.4x means more than 1.44 % bad
    both = windows(**{"1h": Events(good=5900, total=6000), "5m": Events(good=400, total=500)})
    assert slo.evaluate_rule(PAGE_FAST, both, budget=budget, min_traffic=20, is_open=False).firing
    long_only = windows(**{"1h": Events(good=5900, total=6000), "5m": Events(good=500, total=500)})
    assert not slo.evaluate_rule(PAGE_FAST, long_only, budget=budget, min_traffic=20, is_open=False).firing
    short_only = windows(**{"1h": Events(good=5990, total=6000), "5m": Events(good=400, total=500)})
    assert not slo.evaluate_rule(PAGE_FAST, short_only, budget=budget, min_traffic=20, is_open=False).firing


def test_the_minimum_traffic_guard_keeps_a_quiet_class_from_paging():
    # 3 jobs in the hour, 2 failed: a 66 % failure rate, but not an incident.
    quiet = windows(**{"1h": Events(good=1, total=3), "5m": Events(good=0, total=2)})
    verdict = slo.evaluate_rule(PAGE_FAST, quiet, budget=0.001, min_traffic=20, is_open=False)
    assert verdict.guarded and not verdict.firing
    assert verdict.long_burn_rate > 14.4


def test_an_open_alert_resolves_when_the_short_window_drops_below_the_factor():
    budget = 0.01  # 6x means more than 6 % bad
    still_bad_long = windows(**{"6h": Events(good=30000, total=36000), "30m": Events(good=2900, total=3000)})
    verdict = slo.evaluate_rule(PAGE_SLOW, still_bad_long, budget=budget, min_traffic=20, is_open=True)
    assert not verdict.firing  # 30m window at 3.3 % < 6 %, even though 6h is still burning hot
    hot = windows(**{"6h": Events(good=30000, total=36000), "30m": Events(good=2700, total=3000)})
    assert slo.evaluate_rule(PAGE_SLOW, hot, budget=budget, min_traffic=20, is_open=True).firing


def test_the_ticket_rule_is_1x_over_3_days_and_6_hours():
    assert (TICKET.severity, TICKET.factor, TICKET.long_window, TICKET.short_window) == (
        "ticket",
        1.0,
        3 * DAY,
        6 * HOUR,
    )
    assert (PAGE_FAST.factor, PAGE_FAST.long_window, PAGE_FAST.short_window) == (14.4, HOUR, 5 * MINUTE)
    assert (PAGE_SLOW.factor, PAGE_SLOW.long_window, PAGE_SLOW.short_window) == (6.0, 6 * HOUR, 30 * MINUTE)
    slow_leak = windows(**{"3d": Events(good=98500, total=100000), "6h": Events(good=8800, total=9000)})
    assert slo.evaluate_rule(TICKET, slow_leak, budget=0.01, min_traffic=20, is_open=False).firing


def test_queue_age_events_are_minutes_with_data():
    assert slo.queue_age_minute_events(None, 60) == Events()
    assert slo.queue_age_minute_events(60, 60) == Events(good=1, total=1)
    assert slo.queue_age_minute_events(61, 60) == Events(good=0, total=1)
