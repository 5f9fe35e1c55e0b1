from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

from dashboards.templatetags import audit_entries, formatting, slo_budgets
from tests.factories import SloFactory


def test_duration():
    assert formatting.duration(30) == "30 s"
    assert formatting.duration(timedelta(minutes=5)) == "5 min"
    assert formatting.duration(None) == ""


def test_compact_numbers():
    assert [formatting.compact(n) for n in (0, 7, 999, 1234, 12_000, 3_400_000, 2e9)] == [
        "0",
        "7",
        "999",
        "1.2k",
        "12k",
        "3.4M",
        "2G",
    ]
    assert formatting.compact(None) == ""


def test_money_and_rates():
    assert formatting.money(Decimal("1234.5"), "USD") == "$1,234.50"
    assert formatting.money(Decimal("0.0042"), "EUR") == "€0.0042"
    assert formatting.money(Decimal("3"), "CHF") == "3.00 CHF"
    assert formatting.money(Decimal("0.000038912"), "USD") == "$0.000039"  # tiny unit prices keep their digits
    assert formatting.money(Decimal("0.2106"), "USD") == "$0.2106"
    assert formatting.rate(Decimal("0.000018000000")) == "0.000018"


def test_weekdays():
    assert formatting.weekdays([0, 1, 2, 3, 4, 5, 6]) == "Every day"
    assert formatting.weekdays([4, 0, 1, 2, 3]) == "Mon–Fri"
    assert formatting.weekdays([5, 6]) == "Sat, Sun"


def test_error_budget_in_the_units_the_slo_counts():
    queue = SloFactory.build(kind="queue_age", target_percent=Decimal("99.9"), window_days=30)
    assert slo_budgets.error_budget(queue) == "0.1 % of minutes (≈ 43.2 min) over 30 d"
    ratio = SloFactory.build(kind="success_ratio", target_percent=Decimal("99.5"), window_days=28)
    assert slo_budgets.error_budget(ratio) == "0.5 % of jobs over 28 d"


def test_event_detail_lists_changed_fields_but_not_for_creations():
    update = SimpleNamespace(action="workload_class.update", changes={f"field_{i}": [1, 2] for i in range(6)})
    assert audit_entries.event_detail(update) == "changed field 0, field 1, field 2, field 3 and 2 more"
    create = SimpleNamespace(action="workload_class.create", changes={"slug": [None, "x"]})
    assert audit_entries.event_detail(create) == ""


def test_nodata_is_a_dash_with_words_for_screen_readers():
    html = formatting.nodata()
    assert html.startswith('<span class="nodata" title="no data yet">—')
    assert '<span class="visually-hidden"> no data yet</span>' in html
