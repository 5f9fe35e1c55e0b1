"""The statistics behind migration evidence: 95 % intervals and a non-inferiority gate. Plain
Python, no Django.

- Rates (failure rate, SLO attainment): Wilson score intervals. They stay inside [0, 1] and
  behave with few events or none failing, where the normal approximation does not.
- The difference of two rates: Newcombe's hybrid score interval (method 10), built from the two
  Wilson intervals.
- Percentiles of latency: the distribution-free interval of a quantile. The ranks
  n*q -/+ z*sqrt(n*q*(1-q)) are read off the histogram, so the interval also carries the bucket
  width.
- Cost per 1k records: a ratio estimate (total cost / total records) with a delta-method
  interval over the per-minute (cost, records) pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from workloads.domain import histogram

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    estimate: float | None
    low: float | None
    high: float | None
    n: int  # the sample size behind it

    @property
    def known(self) -> bool:
        return self.estimate is not None


NO_DATA = Interval(None, None, None, 0)


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval of successes / n."""
    if n <= 0:
        return NO_DATA
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def rate_difference(new: Interval, old: Interval) -> Interval:
    """new - old with Newcombe's hybrid score interval, from the two Wilson intervals."""
    if not (new.known and old.known):
        return NO_DATA
    diff = new.estimate - old.estimate
    low = diff - math.sqrt((new.estimate - new.low) ** 2 + (old.high - old.estimate) ** 2)
    high = diff + math.sqrt((new.high - new.estimate) ** 2 + (old.estimate - old.low) ** 2)
    return Interval(diff, low, high, min(new.n, old.n))


def _value_at_rank(counts: Sequence[int], rank: float, bounds: Sequence[float]) -> float:
    return histogram.percentile(counts, 100.0 * rank / sum(counts), bounds)


def percentile_interval(
    counts: Sequence[int], q: float, z: float = Z95, bounds: Sequence[float] = histogram.BOUNDS
) -> Interval:
    """The q-th percentile (0 < q < 100) of a histogram and its distribution-free 95 % interval."""
    n = sum(counts)
    if n <= 0:
        return NO_DATA
    p = q / 100.0
    spread = z * math.sqrt(n * p * (1 - p))
    low_rank = max(0.0, math.floor(n * p - spread))
    high_rank = min(float(n), math.ceil(n * p + spread))
    return Interval(
        histogram.percentile(counts, q, bounds),
        _value_at_rank(counts, low_rank, bounds),
        _value_at_rank(counts, high_rank, bounds),
        n,
    )


def ratio_interval(pairs: Sequence[tuple[float, float]], *, scale: float = 1.0, z: float = Z95) -> Interval:
    """sum(cost) / sum(records) * scale, with a delta-method interval over the (cost, records)
    pairs (one per minute). n is the number of records."""
    pairs = [(float(c), float(r)) for c, r in pairs if r > 0 or c > 0]
    total_records = sum(r for _c, r in pairs)
    if total_records <= 0:
        return NO_DATA
    ratio = sum(c for c, _r in pairs) / total_records
    m = len(pairs)
    if m < 2:
        return Interval(ratio * scale, None, None, int(total_records))
    mean_records = total_records / m
    residual = sum((c - ratio * r) ** 2 for c, r in pairs) / (m - 1)
    se = math.sqrt(residual / m) / mean_records
    return Interval(ratio * scale, max(0.0, ratio - z * se) * scale, (ratio + z * se) * scale, int(total_records))


# --- the gate ------------------------------------------------------------------------------------------
PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: str  # pass, fail, insufficient
    detail: str


def gate_failure_rate(new: Interval, old: Interval, *, margin_points: float, min_outcomes: int) -> Check:
    """Non-inferior when the upper bound of (new - old) stays within `margin_points` percentage points."""
    if new.n < min_outcomes or old.n < min_outcomes:
        return Check("failure_rate", INSUFFICIENT, f"needs {min_outcomes} outcomes a side (old {old.n}, new {new.n})")
    diff = rate_difference(new, old)
    verdict = PASS if diff.high * 100 <= margin_points else FAIL
    return Check(
        "failure_rate",
        verdict,
        f"new - old = {diff.estimate * 100:+.2f} pp, 95 % upper bound {diff.high * 100:+.2f} pp "
        f"({'within' if verdict == PASS else 'over'} the {margin_points:g} pp margin)",
    )


def gate_ratio(name: str, new: Interval, old: Interval, *, max_ratio: float, min_n: int, label: str) -> Check:
    """Non-inferior when new's upper bound is at most `max_ratio` x old's estimate."""
    if not (new.known and old.known) or new.n < min_n or old.n < min_n:
        return Check(name, INSUFFICIENT, f"needs {min_n} a side (old {old.n}, new {new.n})")
    if not old.estimate:
        return Check(name, INSUFFICIENT, f"the old {label} is zero: no ratio")
    bound = new.high if new.high is not None else new.estimate
    ratio = bound / old.estimate
    verdict = PASS if ratio <= max_ratio else FAIL
    return Check(
        name,
        verdict,
        f"new {label} upper bound is {ratio:.2f}x the old {label} "
        f"({'within' if verdict == PASS else 'over'} the {max_ratio:g}x limit)",
    )


def gate_attainment(new: Interval, old: Interval, *, margin_points: float, min_n: int) -> Check:
    """Queue-age SLO attainment: non-inferior when (new - old)'s lower bound is above -margin."""
    if new.n < min_n or old.n < min_n:
        return Check("queue_age_attainment", INSUFFICIENT, f"needs {min_n} minutes a side (old {old.n}, new {new.n})")
    diff = rate_difference(new, old)
    verdict = PASS if diff.low * 100 >= -margin_points else FAIL
    return Check(
        "queue_age_attainment",
        verdict,
        f"new - old = {diff.estimate * 100:+.2f} pp, 95 % lower bound {diff.low * 100:+.2f} pp "
        f"({'within' if verdict == PASS else 'over'} the {margin_points:g} pp margin)",
    )


def overall(checks: Sequence[Check]) -> str:
    verdicts = {c.verdict for c in checks}
    if FAIL in verdicts:
        return FAIL
    if INSUFFICIENT in verdicts or not checks:
        return INSUFFICIENT
    return PASS
