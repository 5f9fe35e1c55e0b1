"""Formatting for dense dashboards: durations, counts and money in few characters."""

import json
from decimal import Decimal

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html

from dashboards.charts import DURATION_UNITS, action_label, seconds_label, slo_summary
from dashboards.diffs import readable_changes
from workloads.domain.slo import ALERT_WINDOWS, window_label
from workloads.models import SloKind
from workloads.selectors.series import peak_instances

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """30 -> '30 s', 300 -> '5 min', 86400 -> '1 d'; '' for None."""
    if seconds is None or seconds == "":
        return ""
    if hasattr(seconds, "total_seconds"):
        seconds = seconds.total_seconds()
    return seconds_label(float(seconds))


@register.filter
def instance_count(minute_mean) -> str:
    """A minute's mean instance count as the whole number that ran at its peak: 0.8 -> '1'."""
    if minute_mean is None or minute_mean == "":
        return ""
    return str(peak_instances(float(minute_mean)))


@register.simple_tag
def duration_units() -> str:
    """DURATION_UNITS as JSON, for the browser (base.html's <html data-duration-units>)."""
    return json.dumps([list(unit) for unit in DURATION_UNITS])


@register.simple_tag
def stale_after_seconds() -> int:
    """TELEMETRY_STALE_AFTER_SECONDS, for the browser (base.html's <html data-stale-after-seconds>)."""
    return settings.TELEMETRY_STALE_AFTER_SECONDS


@register.filter
def compact(number) -> str:
    """1234 -> '1.2k', 3400000 -> '3.4M'."""
    if number is None or number == "":
        return ""
    value = float(number)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:g}"


@register.filter
def money(amount, currency: str = "USD") -> str:
    if amount is None or amount == "":
        return ""
    amount = Decimal(str(amount))
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency)
    if abs(amount) >= 1 or amount == 0:
        text = f"{amount:,.2f}"
    else:
        # Per-job and per-record prices are tiny: keep two significant digits rather than
        # rounding them away ($0.000039, not $0.).
        places = max(4, -amount.adjusted() + 1)
        text = f"{amount:.{places}f}".rstrip("0")
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


@register.filter
def rate(amount) -> str:
    """A unit price without trailing zeros: 0.000018000000 -> '0.000018'."""
    if amount is None or amount == "":
        return ""
    return f"{Decimal(amount).normalize():f}"


@register.filter
def minutes_ago(moment) -> int | None:
    if moment is None or moment == "":
        return None
    return max(0, int((timezone.now() - moment).total_seconds() // 60))


DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@register.filter
def weekdays(days) -> str:
    """[0, 1, 2, 3, 4] -> 'Mon–Fri', [5, 6] -> 'Sat, Sun', all seven -> 'Every day'."""
    days = sorted(set(days or []))
    if len(days) == 7:
        return "Every day"
    if days == [0, 1, 2, 3, 4]:
        return "Mon–Fri"
    return ", ".join(DAY_NAMES[d] for d in days)


@register.simple_tag
def nodata(what: str = "no data yet"):
    """The cell for a value that has not been measured yet: a dash people see, words screen
    readers hear, never a zero that looks like a measurement."""
    return format_html('<span class="nodata" title="{}">—<span class="visually-hidden"> {}</span></span>', what, what)


@register.filter
def slo_objective(slo) -> str:
    """'p95 < 2 min' or '99.9 % succeed'."""
    return slo_summary(slo)


@register.filter
def error_budget(slo) -> str:
    """The budget an SLO allows over its window, in the units its events are counted in."""
    percent = Decimal(100) - slo.target_percent
    share = f"{percent.normalize():f} %"
    if slo.kind == SloKind.QUEUE_AGE:
        minutes = float(percent) / 100 * slo.window_days * 1440
        return f"{share} of minutes (≈ {seconds_label(minutes * 60)}) over {slo.window_days} d"
    return f"{share} of jobs over {slo.window_days} d"


@register.filter
def event_detail(event) -> str:
    """What an audit event changed, as a short list of fields; nothing for a creation or a
    deletion, where every field changed and the list says nothing."""
    changes = event.changes
    if not changes or event.action.endswith((".create", ".delete")):
        return ""
    names = sorted(changes)
    shown = ", ".join(name.replace("_", " ") for name in names[:4])
    return "changed " + shown + (f" and {len(names) - 4} more" if len(names) > 4 else "")


@register.filter
def audit_action(action: str) -> str:
    return action_label(action)


@register.filter
def slo_kind_label(kind) -> str:
    """'queue_age' -> 'Queue age (oldest unacked message)'."""
    try:
        return SloKind(kind).label
    except ValueError:
        return str(kind or "")


@register.filter
def clamp_percent(value) -> float:
    """For a <meter>: an overspent budget (-40 %) still draws as empty, not as an error."""
    if value is None or value == "":
        return 0.0
    return max(0.0, min(100.0, float(value)))


@register.simple_tag
def budget_text(card) -> str:
    """What is left of an SLO's budget in its own units: minutes for queue age, jobs otherwise."""
    status = card.status
    if status is None:
        return ""

    def amount(value: float) -> str:
        if card.unit == "minutes":
            return seconds_label(abs(value) * 60)
        return f"{abs(value):,.0f}"

    noun = "" if card.unit == "minutes" else " jobs"
    if status.budget_allowed <= 0:
        return "no budget yet: no traffic in the window"
    if status.budget_remaining < 0:
        return f"overspent by {amount(status.budget_remaining)}{noun} (of {amount(status.budget_allowed)}{noun})"
    return f"{amount(status.budget_remaining)} of {amount(status.budget_allowed)}{noun} left"


@register.filter
def burn_class(rate) -> str:
    """A burn rate's colour: the page thresholds (6x, 14.4x) are bad, anything above 1x is a warning."""
    if rate is None or rate == "":
        return ""
    rate = float(rate)
    if rate >= 6:
        return "count-bad"
    if rate > 1:
        return "count-warn"
    return ""


@register.filter
def readable_diff(changes):
    return readable_changes(changes)


@register.filter
def hours(seconds) -> str:
    """Instance-seconds as hours: 45000 -> '12.5'."""
    if seconds is None or seconds == "":
        return ""
    return f"{float(seconds) / 3600:,.1f}"


@register.filter
def add_money(amount, other):
    """Decimal addition for templates (Django's `add` filter goes through int())."""
    return Decimal(str(amount or 0)) + Decimal(str(other or 0))


@register.filter
def json_text(value) -> str:
    """A JSON value in one line, for the audit log's extra fields."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)


@register.filter
def burn(rate) -> str:
    """A burn rate in few characters: 1000 -> '1000×', 14.4 -> '14.4×', 0.523 -> '0.52×'."""
    if rate is None or rate == "":
        return ""
    rate = float(rate)
    if rate >= 100:
        return f"{rate:.0f}×"
    if rate >= 10:
        return f"{rate:.1f}×"
    return f"{rate:.2g}×" if rate else "0×"


@register.filter
def elapsed_since(end, start) -> str:
    """How long from `start` to `end`, to the second for short spans ('12 s', '3.5 min')."""
    if not end or not start:
        return ""
    return seconds_label(max(0.0, (end - start).total_seconds()))


@register.filter
def burn_windows(card) -> list[tuple[str, float]]:
    """An SLO card's burn rates as (window, rate), shortest window first (the stored JSON keeps
    no order)."""
    rates = card.burn_rates
    order = [window_label(seconds) for seconds in ALERT_WINDOWS]
    return sorted(rates.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
