"""The scaling controller's decision, as a pure function of its inputs (no Django, no providers),
so a synthetic backlog timeline can drive it minute by minute in a test, and the preview and the
restore rule compute targets the same way the controller does.

target = clamp(ceil(backlog / (throughput per instance x drain target)), min, max), with min and
max from the schedule window in force; 0 while the class is paused. A change is made only

- beyond the hysteresis band: |target - current| >= max(1, ceil(current x hysteresis)), so a busy
  pool does not flap by one instance every tick, and
- after the cooldown since the last change we made (shorter for scaling up than down: adding
  capacity late costs latency, removing it late costs only money).

A pool outside the schedule's bounds is brought inside at once, past both guards: a window that
opens ("weekend policy: max 2") must take effect when it opens, not after a cooldown. So is a pool
at zero with work waiting: it does no work at all, so every second of cooldown is pure latency.

A busy pool drains its backlog as fast as it arrives, so one sample can read 0 while work flows.
Sizing by that sample alone would take a working pool to zero and leave the next arrivals waiting
for a scale-up; so a pool that completed work in the last few minutes keeps at least one instance
(where the bounds allow one).

The queue's age is read too: older than the drain target while the backlog asks for no more, the
workers are either idle (the oldest messages are waiting out retries: more instances would not
help) or busy with work the backlog undercounts (one more step). And a pool whose workers do no
work at all (workloads.domain.health: crash-looping, stuck, no handler) gets no more instances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from workloads.domain.scheduling import InstanceBounds


@dataclass(frozen=True)
class ScalingSettings:
    cooldown_up: timedelta = timedelta(minutes=3)
    cooldown_down: timedelta = timedelta(minutes=10)
    hysteresis: float = 0.10  # fraction of the current count


def desired_instances(
    *, backlog: float, throughput_per_instance: float, drain_target_seconds: float, bounds: InstanceBounds
) -> int:
    """Instances that drain `backlog` within the drain target, clamped to the bounds."""
    capacity = throughput_per_instance * drain_target_seconds  # messages one instance clears in time
    needed = math.ceil(max(0.0, backlog) / capacity) if capacity > 0 else bounds.max_instances
    return clamp(needed, bounds)


def clamp(count: int, bounds: InstanceBounds) -> int:
    return max(bounds.min_instances, min(bounds.max_instances, count))


def hysteresis_band(current: int, fraction: float) -> int:
    return max(1, math.ceil(current * fraction))


def human_count(value: float) -> str:
    """12345 -> "12.3k", 340 -> "340": short numbers for reasons people read."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:.0f}"


def _bounds_label(bounds: InstanceBounds) -> str:
    return "baseline" if bounds.source == "baseline" else f"{bounds.source} policy"


@dataclass(frozen=True)
class DecisionInputs:
    now: datetime
    current: int  # the pool's actual instance count
    bounds: InstanceBounds
    backlog: float | None  # None: no fresh telemetry
    queue_age_seconds: float | None
    throughput_per_instance: float
    drain_target_seconds: float
    last_change_at: datetime | None = None  # when we last set the pool
    held: bool = False  # paused by incident mode or on its own
    recent_work: float | None = None  # jobs completed or failed in the last few minutes (None: unknown)
    recent_work_seconds: float = 300.0  # the span `recent_work` covers
    unhealthy: str = ""  # why the pool is unhealthy ("crash-looping", ...; workloads.domain.health), else ""


@dataclass(frozen=True)
class Decision:
    target: int  # what the class should run now
    change: bool  # whether to scale the pool to `target` now
    reason: str  # why the target is what it is (recorded on the Action)
    blocked_by: str = ""  # "", "hysteresis", "cooldown", "held", "unhealthy" or "unchanged"


# Below this share of the pool's capacity (completions and failures over the recent span) the
# workers count as idle: an old queue with idle workers is waiting out retries, not capacity.
IDLE_UTILISATION = 0.5


def _queue_age_note(inputs: DecisionInputs, target: int, settings: ScalingSettings) -> tuple[int, str]:
    """Read the queue age as well as the backlog. A queue older than the drain target that the
    backlog alone would not scale for is either waiting out retries (the oldest messages fail and
    back off: poison) while the workers idle, and more instances would not help; or the workers
    are busy with slow work the backlog undercounts, and one more step of instances does."""
    age, current = inputs.queue_age_seconds, inputs.current
    if age is None or age <= inputs.drain_target_seconds or target > current or current == 0:
        return target, ""
    if inputs.recent_work is None or inputs.unhealthy:
        return target, ""  # unknown work, or workers that do none at all: health says why
    capacity = current * inputs.throughput_per_instance * inputs.recent_work_seconds
    utilisation = inputs.recent_work / capacity if capacity > 0 else 0.0
    over = f"queue age {age:.0f} s is over the {inputs.drain_target_seconds:g} s drain target"
    if utilisation < IDLE_UTILISATION:
        return target, (
            f"; {over} but the workers are idle ({utilisation:.0%} of capacity): the oldest messages are "
            "waiting out retries (poison?), more instances would not help"
        )
    if current >= inputs.bounds.max_instances:
        return target, f"; {over} with the workers busy ({utilisation:.0%} of capacity), at the max"
    stepped = min(inputs.bounds.max_instances, current + hysteresis_band(current, settings.hysteresis))
    return stepped, f"; {over} with the workers busy ({utilisation:.0%} of capacity): one more instance"


def scaling_decision(inputs: DecisionInputs, settings: ScalingSettings = ScalingSettings()) -> Decision:
    bounds, current = inputs.bounds, inputs.current
    if inputs.held:
        # The hold's own actions own the pool while it lasts; the controller only reports.
        return Decision(target=0, change=False, reason="paused", blocked_by="held")

    if current > bounds.max_instances:
        return Decision(bounds.max_instances, True, f"{_bounds_label(bounds)}: max {bounds.max_instances}")
    if current < bounds.min_instances:
        return Decision(bounds.min_instances, True, f"{_bounds_label(bounds)}: min {bounds.min_instances}")

    if inputs.backlog is None:
        return Decision(current, False, "no fresh backlog data: keeping the current count", blocked_by="unchanged")

    target = desired_instances(
        backlog=inputs.backlog,
        throughput_per_instance=inputs.throughput_per_instance,
        drain_target_seconds=inputs.drain_target_seconds,
        bounds=bounds,
    )
    reason = f"backlog {human_count(inputs.backlog)}"
    if inputs.queue_age_seconds is not None:
        reason += f", queue age {inputs.queue_age_seconds:.0f} s"
    if target == 0 and inputs.recent_work and bounds.max_instances > 0:
        target = 1
        reason += f", still completing work ({human_count(inputs.recent_work)} jobs lately): keeping one instance"
    elif target == bounds.max_instances and target > 0:
        reason += f" ({_bounds_label(bounds)}: max {bounds.max_instances})"
    elif target == bounds.min_instances:
        reason += f" ({_bounds_label(bounds)}: min {bounds.min_instances})"
    target, note = _queue_age_note(inputs, target, settings)
    reason += note

    if inputs.unhealthy and target > current:
        return Decision(
            current,
            False,
            f"{reason}; not scaling up: the pool is unhealthy ({inputs.unhealthy}), more instances would not help",
            blocked_by="unhealthy",
        )
    if target == current:
        return Decision(target, False, reason, blocked_by="unchanged")
    if current == 0:
        return Decision(target, True, reason + " (scaling up from zero at once)")
    if abs(target - current) < hysteresis_band(current, settings.hysteresis):
        return Decision(target, False, reason, blocked_by="hysteresis")
    if inputs.last_change_at is not None:
        cooldown = settings.cooldown_up if target > current else settings.cooldown_down
        if inputs.now - inputs.last_change_at < cooldown:
            return Decision(target, False, reason, blocked_by="cooldown")
    return Decision(target, True, reason)
