"""Small inline SVG charts that need no script: trend sparklines (with their words for screen
readers) and the scaling controller's preview bars."""

from django import template
from django.utils.html import format_html, format_html_join

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
