"""Template helpers of the on-call screens: trend sparklines, payloads as people read them, and
the words a confirmation uses."""

import base64
import json
import math
from urllib.parse import urlencode

from django import template
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from dashboards.charts import seconds_label
from workloads.selectors.replays import outcome_still_watched
from workloads.selectors.replays import replay_outcome as replay_outcome_of

register = template.Library()


@register.simple_tag
def sparkline(values, *, width: int = 96, height: int = 22, label: str = ""):
    """A small inline SVG of hourly counts (oldest first), with the total and the peak in words
    for screen readers; no script needed."""
    values = [int(v or 0) for v in (values or [])]
    if not values:
        return ""
    peak = max(values)
    step = width / max(1, len(values) - 1)

    def y(value: int) -> float:
        return height - 2 - (value / peak * (height - 4) if peak else 0)

    points = " ".join(f"{i * step:.1f},{y(v):.1f}" for i, v in enumerate(values))
    words = label or f"{sum(values)} in the last {len(values)} h, at most {peak} in one hour"
    return format_html(
        '<svg class="sparkline" width="{}" height="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        '<title>{}</title><polyline points="{}" fill="none" stroke="currentColor" stroke-width="1.5"'
        ' stroke-linejoin="round"/></svg>',
        width,
        height,
        width,
        height,
        words,
        words,
        points,
    )


@register.filter
def trend_words(values) -> str:
    """A 24 h arrival trend for screen readers and the tooltip."""
    values = [int(v or 0) for v in (values or [])]
    last_hour = values[-1] if values else 0
    return f"{sum(values)} dead letters arrived in the last {len(values)} h, {last_hour} in the last hour"


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.simple_tag
def payload_text(row) -> str:
    """A dead letter's body as text: indented JSON, the text itself, or base64 said as such."""
    if row.payload_format == "json":
        return pretty_json(row.payload)
    if row.payload_format == "base64":
        size = len(base64.b64decode(row.payload_text or ""))
        return f"(binary, {size} bytes, shown as base64)\n{row.payload_text}"
    return row.payload_text


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


@register.simple_tag
def hidden_fields(params: dict):
    """Hidden inputs carrying a filter (name -> value) through a form."""
    return format_html_join(
        "", '<input type="hidden" name="{}" value="{}">', ((name, value) for name, value in params.items() if value)
    )


@register.filter
def minutes_label(minutes) -> str:
    if minutes in (None, ""):
        return ""
    return seconds_label(int(minutes) * 60)


@register.filter
def percent(value, places: int = 1) -> str:
    if value is None or value == "":
        return ""
    return f"{float(value) * 100:.{int(places)}f} %"


@register.filter
def ratio_change(value) -> str:
    """b / a as a change: 1.25 -> '+25 %', 0.8 -> '−20 %'."""
    if value is None or value == "":
        return ""
    change = (float(value) - 1) * 100
    if abs(change) < 0.05:
        return "no change"
    return f"{'+' if change > 0 else '−'}{abs(change):.1f} %"


@register.filter
def points_change(value) -> str:
    """A failure-rate difference (b - a, as a fraction) in percentage points."""
    if value is None or value == "":
        return ""
    points = float(value) * 100
    if abs(points) < 0.005:
        return "no change"
    return f"{'+' if points > 0 else '−'}{abs(points):.2f} pp"


@register.filter
def as_query(params: dict) -> str:
    """A dict of filters as a query string, empty values left out."""
    return urlencode({name: value for name, value in (params or {}).items() if value})


@register.filter
def split_words(text: str) -> list[str]:
    return str(text).split()


@register.filter
def field_named(form, name: str):
    return form[name]


@register.simple_tag
def preview_bars(preview, *, height: int = 48):
    """The controller preview's hourly targets as an SVG bar strip (one bar per hour, a tick at
    each midnight UTC), with the range in words for screen readers."""
    hours = list(preview.hours)
    if not hours:
        return ""
    peak = max(preview.peak, 1)
    width = len(hours) * 4
    bars = []
    for i, point in enumerate(hours):
        bar = max(1.0, point.target / peak * (height - 14)) if point.target else 0
        bounds = f"{point.window} {point.min_instances}–{point.max_instances}"
        title = f"{point.at:%a %H:%M} UTC: target {point.target} ({bounds})"
        bars.append(
            format_html(
                '<rect x="{}" y="{}" width="3" height="{}" class="bar"><title>{}</title></rect>',
                i * 4,
                f"{height - 12 - bar:.1f}",
                f"{bar:.1f}",
                title,
            )
        )
        if point.at.hour == 0 and point.at.minute == 0:
            bars.append(
                format_html(
                    '<line x1="{}" x2="{}" y1="0" y2="{}" class="day-tick"/>'
                    '<text x="{}" y="{}" class="day-label">{}</text>',
                    i * 4,
                    i * 4,
                    height - 10,
                    i * 4 + 2,
                    height - 1,
                    f"{point.at:%a}",
                )
            )
    bars.insert(0, format_html('<line x1="0" x2="{}" y1="{}" y2="{}" class="axis"/>', width, height - 12, height - 12))
    targets = [p.target for p in hours]
    words = f"Target between {min(targets)} and {max(targets)} instances over the next {len(hours)} hours"
    return format_html(
        '<svg class="preview-bars" viewBox="0 0 {} {}" preserveAspectRatio="none" role="img" aria-label="{}">{}</svg>',
        width,
        height,
        words,
        format_html_join("", "{}", ((bar,) for bar in bars)),
    )
