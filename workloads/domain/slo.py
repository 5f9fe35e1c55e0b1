"""SLO arithmetic: good/total events, error budgets, burn rates and the SRE workbook's
multi-window, multi-burn-rate alert rules. Plain Python, no Django.

Conventions: a target and a budget are fractions (99.5 % -> target 0.995, budget 0.005); window
lengths are seconds; a burn rate of 1 spends exactly the whole budget over the SLO window.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from workloads.domain import histogram

MINUTE = 60
HOUR = 3600
DAY = 86400
# Rounding guard: 990 good of 1000 at a 99 % target is exactly on target, not a hair below it.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Events:
    good: float = 0.0
    total: float = 0.0

    @property
    def bad(self) -> float:
        return max(0.0, self.total - self.good)

    def __add__(self, other: Events) -> Events:
        return Events(self.good + other.good, self.total + other.total)


NO_EVENTS = Events()


def budget_fraction(target_percent: Decimal | float | str) -> float:
    """1 - target, computed in decimal so 99.9 % gives a budget of exactly 0.001."""
    return float((Decimal(100) - Decimal(str(target_percent))) / Decimal(100))


# --- What counts as a good event, per SLO kind ----------------------------------------------------
def success_events(completed: float, dead_lettered: float) -> Events:
    """Each unit of work once, by its final outcome: completed (good) or dead-lettered (bad).
    A failed attempt that a retry or a replay later completed is not a bad event: attempts are
    their own figure (`attempt_failure_ratio`)."""
    return Events(good=float(completed), total=float(completed) + float(dead_lettered))


def attempt_failure_ratio(completed: float, failed_attempts: float) -> float | None:
    """The share of attempts that failed (retried, dead-lettered or timed out); None without any."""
    attempts = float(completed) + float(failed_attempts)
    return float(failed_attempts) / attempts if attempts > 0 else None


def latency_events(latency_counts: Sequence[int] | None, threshold_seconds: float) -> Events:
    """Completions at or under the threshold, read from the histogram (interpolated in the bucket
    that holds the threshold)."""
    if not latency_counts:
        return NO_EVENTS
    return Events(good=histogram.count_below(latency_counts, threshold_seconds), total=float(sum(latency_counts)))


def queue_age_minute_events(oldest_unacked_age: float | None, threshold_seconds: float) -> Events:
    """One event per minute with data: good when the minute's oldest-unacked age was under the
    threshold. The age is sampled once a minute and kept as the step's maximum, so the minute's
    p-th percentile is that value (or below it): judging by it never flatters the class."""
    if oldest_unacked_age is None:
        return NO_EVENTS
    return Events(good=1.0 if oldest_unacked_age <= threshold_seconds else 0.0, total=1.0)


def queue_age_hour_events(sorted_ages: Sequence[float] | None, threshold_seconds: float) -> Events:
    """An hourly rollup keeps its minutes' ages, sorted: good minutes are those at or under the
    threshold, counted exactly."""
    if not sorted_ages:
        return NO_EVENTS
    return Events(good=float(bisect_right(sorted_ages, threshold_seconds)), total=float(len(sorted_ages)))


# --- Budgets and burn rates ---------------------------------------------------------------------------
def burn_rate(events: Events, budget: float) -> float:
    """(bad / total) / budget; 0 without traffic (nothing is burning)."""
    if events.total <= 0 or budget <= 0:
        return 0.0
    return (events.bad / events.total) / budget


@dataclass(frozen=True)
class ErrorBudget:
    good: float
    total: float
    attainment: float | None  # good / total, None without traffic
    met: bool  # attainment >= target (True without traffic)
    allowed: float  # bad events the budget allows for this much traffic
    consumed: float  # bad events
    remaining: float  # allowed - consumed; negative once overspent
    remaining_fraction: float  # remaining / allowed (1.0 without traffic; negative when overspent)
    exhaustion_seconds: float | None  # at the current burn: 0 when spent, None when not burning


def error_budget(events: Events, *, budget: float, window_seconds: float, current_burn_rate: float) -> ErrorBudget:
    allowed = events.total * budget
    consumed = events.bad
    remaining = allowed - consumed
    if abs(remaining) < _EPSILON * max(1.0, events.total):
        remaining = 0.0
    if events.total <= 0:
        remaining_fraction = 1.0
    elif allowed > 0:
        remaining_fraction = remaining / allowed
    else:
        remaining_fraction = 0.0
    if remaining <= 0 and events.total > 0:
        exhaustion = 0.0
    elif current_burn_rate <= 0:
        exhaustion = None
    else:
        # A burn rate of 1 spends the whole budget in one window, so the fraction left lasts
        # remaining_fraction windows divided by the burn rate.
        exhaustion = remaining_fraction * window_seconds / current_burn_rate
    return ErrorBudget(
        good=events.good,
        total=events.total,
        attainment=events.good / events.total if events.total > 0 else None,
        met=remaining >= 0,
        allowed=allowed,
        consumed=consumed,
        remaining=remaining,
        remaining_fraction=remaining_fraction,
        exhaustion_seconds=exhaustion,
    )


# --- Multi-window, multi-burn-rate alerts (SRE workbook, chapter 5) -------------------------------
@dataclass(frozen=True)
class BurnRule:
    name: str
    severity: str  # "page" or "ticket"
    factor: float
    long_window: int
    short_window: int


BURN_RULES: tuple[BurnRule, ...] = (
    BurnRule("page-1h-5m", "page", 14.4, HOUR, 5 * MINUTE),
    BurnRule("page-6h-30m", "page", 6.0, 6 * HOUR, 30 * MINUTE),
    BurnRule("ticket-3d-6h", "ticket", 1.0, 3 * DAY, 6 * HOUR),
)
ALERT_WINDOWS: tuple[int, ...] = tuple(sorted({w for r in BURN_RULES for w in (r.long_window, r.short_window)}))


def window_label(seconds: int) -> str:
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class RuleVerdict:
    firing: bool
    long_burn_rate: float
    short_burn_rate: float
    long_total: float
    guarded: bool  # too little traffic in the long window to open an alert


def evaluate_rule(
    rule: BurnRule, windows: Mapping[int, Events], *, budget: float, min_traffic: float, is_open: bool
) -> RuleVerdict:
    """Whether the alert for `rule` should be open after this evaluation.

    It opens when both windows burn faster than the factor and the long window saw at least
    `min_traffic` events; once open it stays open until the short window drops below the factor
    (the short window is what makes a fixed incident resolve quickly)."""
    long_events = windows.get(rule.long_window, NO_EVENTS)
    short_events = windows.get(rule.short_window, NO_EVENTS)
    long_burn = burn_rate(long_events, budget)
    short_burn = burn_rate(short_events, budget)
    guarded = long_events.total < min_traffic
    if is_open:
        firing = short_burn >= rule.factor
    else:
        firing = not guarded and long_burn > rule.factor and short_burn > rule.factor
    return RuleVerdict(
        firing=firing,
        long_burn_rate=long_burn,
        short_burn_rate=short_burn,
        long_total=long_events.total,
        guarded=guarded,
    )
