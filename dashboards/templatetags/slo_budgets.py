"""SLOs as people read them: the objective, the error budget and what is left of it, burn rates
and their colours."""

from decimal import Decimal

from django import template

from dashboards.charts import seconds_label, slo_summary
from workloads.domain.slo import ALERT_WINDOWS, window_label
from workloads.models import SloKind

register = template.Library()


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
def burn_windows(card) -> list[tuple[str, float]]:
    """An SLO card's burn rates as (window, rate), shortest window first (the stored JSON keeps
    no order)."""
    rates = card.burn_rates
    order = [window_label(seconds) for seconds in ALERT_WINDOWS]
    return sorted(rates.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
