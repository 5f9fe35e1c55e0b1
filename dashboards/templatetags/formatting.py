"""Numbers, durations, money, days of the week and changes in few characters, for dense
dashboards, and the cell for a value not measured yet."""

from decimal import Decimal

from django import template
from django.utils.html import format_html

from dashboards.charts import seconds_label
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
def add_money(amount, other):
    """Decimal addition for templates (Django's `add` filter goes through int())."""
    return Decimal(str(amount or 0)) + Decimal(str(other or 0))


@register.filter
def hours(seconds) -> str:
    """Instance-seconds as hours: 45000 -> '12.5'."""
    if seconds is None or seconds == "":
        return ""
    return f"{float(seconds) / 3600:,.1f}"


@register.filter
def minutes_label(minutes) -> str:
    if minutes in (None, ""):
        return ""
    return seconds_label(int(minutes) * 60)


@register.filter
def elapsed_since(end, start) -> str:
    """How long from `start` to `end`, to the second for short spans ('12 s', '3.5 min')."""
    if not end or not start:
        return ""
    return seconds_label(max(0.0, (end - start).total_seconds()))


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


@register.simple_tag
def nodata(what: str = "no data yet"):
    """The cell for a value that has not been measured yet: a dash people see, words screen
    readers hear, never a zero that looks like a measurement."""
    return format_html('<span class="nodata" title="{}">—<span class="visually-hidden"> {}</span></span>', what, what)
