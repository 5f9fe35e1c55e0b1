"""Server settings the browser formats with, written once on <html> (base.html) for
static/js/app.js and static/js/charts.js: the duration units and the staleness threshold."""

import json

from django import template
from django.conf import settings

from dashboards.charts import DURATION_UNITS

register = template.Library()


@register.simple_tag
def duration_units() -> str:
    """DURATION_UNITS as JSON, for the browser (base.html's <html data-duration-units>)."""
    return json.dumps([list(unit) for unit in DURATION_UNITS])


@register.simple_tag
def stale_after_seconds() -> int:
    """TELEMETRY_STALE_AFTER_SECONDS, for the browser (base.html's <html data-stale-after-seconds>)."""
    return settings.TELEMETRY_STALE_AFTER_SECONDS
