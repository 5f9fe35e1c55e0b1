"""Replays on screen: what a replay's messages did afterwards, whether its panel keeps refreshing,
and how long a replay takes at its velocity."""

import math

from django import template
from django.utils import timezone

from dashboards.charts import seconds_label
from workloads.selectors.replays import outcome_still_watched
from workloads.selectors.replays import replay_outcome as replay_outcome_of

register = template.Library()


@register.simple_tag
def replay_outcome(action):
    """What a replay's published messages did afterwards (None for other kinds, and before it
    published anything): the one attached by a list view (one query for the page), else read now."""
    if action.kind != "replay":
        return None
    outcome = getattr(action, "replay_outcome", None)
    if outcome is None:
        outcome = replay_outcome_of(action)
    return outcome if outcome is not None and outcome.published else None


@register.simple_tag
def outcome_watched(action) -> bool:
    """A finished replay whose messages have not all settled yet: its panel keeps refreshing."""
    return outcome_still_watched(action, replay_outcome(action), now=timezone.now())


@register.filter
def replay_seconds(count, velocity) -> str:
    """How long `count` messages take at `velocity` per second: '≈ 12 s'."""
    try:
        seconds = int(count) / float(velocity)
    except (TypeError, ValueError, ZeroDivisionError):
        return ""
    return f"≈ {seconds_label(math.ceil(seconds))}" if seconds >= 1 else "under a second"
