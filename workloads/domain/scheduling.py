"""When schedule windows are open, and which one wins when they overlap.

Pure functions over SchedulePolicy-like objects (anything with the window fields), so the
scaling controller, the 7-day preview and the UI grid all agree.
"""

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta


def window_duration(start: time, end: time) -> timedelta:
    start_delta = timedelta(hours=start.hour, minutes=start.minute, seconds=start.second)
    end_delta = timedelta(hours=end.hour, minutes=end.minute, seconds=end.second)
    if end_delta <= start_delta:  # overnight (or a full day when equal)
        end_delta += timedelta(days=1)
    return end_delta - start_delta


def _occurrence(policy, day: date, tz) -> tuple[datetime, datetime]:
    start = datetime.combine(day, policy.start_time, tzinfo=tz)
    # Add the duration in wall-clock terms, then re-localise, so a 22:00-06:00 window ends at
    # 06:00 local time even across a DST change.
    naive_end = datetime.combine(day, policy.start_time) + window_duration(policy.start_time, policy.end_time)
    return start, naive_end.replace(tzinfo=tz)


def is_active_at(policy, at: datetime) -> bool:
    """True when `at` (aware) falls inside one of the policy's windows."""
    if not policy.enabled:
        return False
    tz = zoneinfo.ZoneInfo(policy.timezone)
    local = at.astimezone(tz)
    # A window that opened yesterday may still be open (overnight windows).
    for day in (local.date() - timedelta(days=1), local.date()):
        if day.weekday() not in policy.days_of_week:
            continue
        start, end = _occurrence(policy, day, tz)
        if start <= local < end:
            return True
    return False


def precedence_key(policy) -> tuple:
    """Sort key: the first policy in this order wins an overlap."""
    return (-policy.priority, window_duration(policy.start_time, policy.end_time), policy.name)


def active_policy(policies, at: datetime):
    """The policy that governs `at`, or None when no window is open."""
    open_now = [p for p in policies if is_active_at(p, at)]
    return min(open_now, key=precedence_key) if open_now else None


@dataclass(frozen=True)
class InstanceBounds:
    min_instances: int
    max_instances: int
    source: str  # "baseline" or the schedule's name


def baseline_bounds(min_instances: int, max_instances: int) -> InstanceBounds:
    """A class's own bounds, in force while none of its windows is open."""
    return InstanceBounds(min_instances, max_instances, "baseline")


def instance_bounds(baseline: InstanceBounds, policies, at: datetime) -> InstanceBounds:
    """The bounds in force at `at`: the winning open window's, else the class's `baseline`."""
    policy = active_policy(policies, at)
    if policy is None:
        return baseline
    return InstanceBounds(policy.min_instances, policy.max_instances, policy.name)


@dataclass(frozen=True)
class BoundsChange:
    at: datetime
    bounds: InstanceBounds  # what holds from `at` on


def window_edges(policies, start: datetime, end: datetime) -> list[datetime]:
    """Every instant in (start, end] where one of the enabled windows opens or closes."""
    edges = set()
    for policy in policies:
        if not policy.enabled:
            continue
        tz = zoneinfo.ZoneInfo(policy.timezone)
        first_day = start.astimezone(tz).date() - timedelta(days=1)  # an overnight window may close today
        for offset in range((end - start).days + 3):
            day = first_day + timedelta(days=offset)
            if day.weekday() not in policy.days_of_week:
                continue
            for edge in _occurrence(policy, day, tz):
                if start < edge <= end:
                    edges.add(edge)
    return sorted(edges)


def next_bounds_change(baseline: InstanceBounds, policies, at: datetime, *, horizon: timedelta = timedelta(days=8)):
    """The first instant after `at` (within `horizon`) when the min or max instance count differs
    from the one in force at `at`, with the new bounds; None when nothing changes (no enabled
    windows, or windows that hand over to the same numbers: the pool would not notice)."""
    policies = list(policies)
    current = instance_bounds(baseline, policies, at)
    for edge in window_edges(policies, at, at + horizon):
        bounds = instance_bounds(baseline, policies, edge)
        if (bounds.min_instances, bounds.max_instances) != (current.min_instances, current.max_instances):
            return BoundsChange(at=edge, bounds=bounds)
    return None
