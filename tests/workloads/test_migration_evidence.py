"""The gate's statistics against hand-computed intervals."""

import pytest

from workloads.domain import evidence


def test_wilson_matches_the_hand_computed_interval():
    # p = 0.1, n = 100, z = 1.96: centre (0.1 + 0.0192)/1.0384 = 0.1148, half 0.0596.
    interval = evidence.wilson(10, 100)
    assert interval.estimate == 0.1
    assert interval.low == pytest.approx(0.05523, abs=1e-4)
    assert interval.high == pytest.approx(0.17437, abs=1e-4)
    assert interval.n == 100


def test_wilson_stays_inside_zero_and_one_with_no_failures():
    interval = evidence.wilson(0, 20)
    assert interval.low == 0.0
    assert interval.high == pytest.approx(0.16113, abs=1e-4)  # 3.84/(20+3.84)
    assert evidence.wilson(0, 0) == evidence.NO_DATA


def test_the_difference_of_two_rates_matches_newcombes_worked_example():
    # Newcombe (1998), example (a): 56/70 vs 48/80, difference 0.2000, 95 % CI 0.0524 to 0.3339.
    diff = evidence.rate_difference(evidence.wilson(56, 70), evidence.wilson(48, 80))
    assert diff.estimate == pytest.approx(0.2)
    assert diff.low == pytest.approx(0.0524, abs=1e-4)
    assert diff.high == pytest.approx(0.3339, abs=1e-4)


def test_a_percentiles_interval_is_read_off_the_histogram_at_the_order_statistic_ranks():
    # 10 values in each of [1,2), [2,3) ... [10, inf): n = 100. The median's ranks are
    # 50 -/+ 1.96 * sqrt(100 * 0.25) = 40.2 .. 59.8 -> 40 and 60, i.e. the edges 5.0 and 7.0.
    bounds = tuple(float(b) for b in range(1, 11))
    counts = [0] + [10] * 10
    interval = evidence.percentile_interval(counts, 50, bounds=bounds)
    assert interval.estimate == pytest.approx(6.0)
    assert interval.low == pytest.approx(5.0)
    assert interval.high == pytest.approx(7.0)
    assert interval.n == 100


def test_the_cost_ratio_interval_is_the_delta_method_over_minutes():
    # ratio 12/5 = 2.4; residuals -0.4, -0.8, 1.2 -> s^2 = 2.24/2 = 1.12; se = sqrt(1.12/3)/(5/3) = 0.36661.
    interval = evidence.ratio_interval([(2, 1), (4, 2), (6, 2)], scale=1000)
    assert interval.estimate == pytest.approx(2400)
    assert interval.low == pytest.approx(1000 * (2.4 - 1.959964 * 0.366606), rel=1e-4)
    assert interval.high == pytest.approx(1000 * (2.4 + 1.959964 * 0.366606), rel=1e-4)
    assert interval.n == 5


def test_the_gate_passes_within_the_margin_and_fails_beyond_it():
    old = evidence.wilson(50, 1000)
    better = evidence.wilson(40, 1000)
    worse = evidence.wilson(90, 1000)
    assert evidence.gate_failure_rate(better, old, margin_points=1.0, min_outcomes=100).verdict == evidence.PASS
    check = evidence.gate_failure_rate(worse, old, margin_points=1.0, min_outcomes=100)
    assert check.verdict == evidence.FAIL and "over the 1 pp margin" in check.detail
    thin = evidence.gate_failure_rate(evidence.wilson(1, 20), old, margin_points=1.0, min_outcomes=100)
    assert thin.verdict == evidence.INSUFFICIENT
    assert (
        evidence.overall([evidence.Check("a", "pass", ""), evidence.Check("b", "insufficient", "")]) == "insufficient"
    )
    assert evidence.overall([evidence.Check("a", "pass", ""), evidence.Check("b", "fail", "")]) == "fail"
    assert evidence.overall([evidence.Check("a", "pass", "")]) == "pass"
