"""The cost screen: a period (today, 7 or 30 days, custom dates), by class or team, cost per 1k
records and per job, totals per currency, and a CSV link to the API's own export."""

import csv
import html as html_lib
import io
import re
from datetime import UTC, datetime
from decimal import Decimal

import time_machine

from dashboards.templatetags.formatting import money
from tests.dashboards.conftest import HX
from tests.dashboards.helpers import HEALTHY_SLUG, SILENT_SLUG
from tests.factories import CostRatesFactory, WorkloadClassFactory
from workloads.selectors.cost import cost_report


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip()


def _lines(html: str) -> dict[str, str]:
    """Each report line's text, by class slug (or team name when grouped by team)."""
    body = html[html.index('<table class="grid cost">') :]
    body = body[body.index("<tbody>") : body.index("</tbody>")]
    lines = {}
    for row in re.findall(r"<tr>.*?</tr>", body, re.S):
        slug = re.search(r'<span class="slug">([^<]+)</span>', row)
        key = slug.group(1) if slug else _text(re.search(r"<th[^>]*>(.*?)</th>", row, re.S).group(1))
        lines[key] = _text(row)
    return lines


def _csv_url(html: str) -> str:
    return html_lib.unescape(re.search(r'<a class="btn" href="([^"]+)" download>Download CSV</a>', html).group(1))


def test_today_by_class_is_the_default(ui_client, viewer, polled_fleet):
    html = ui_client(viewer).get("/cost/").content.decode()
    assert "Today by class" in html
    assert re.search(r'value="today"[^>]*checked', html) and re.search(r'value="class"[^>]*checked', html)
    lines = _lines(html)
    assert len(lines) == 4
    midnight = polled_fleet.replace(hour=0, minute=0, second=0, microsecond=0)
    report = {line.key: line for line in cost_report(start=midnight, end=polled_fleet, now=polled_fleet).lines}
    healthy = report[HEALTHY_SLUG]
    assert healthy.total_cost > 0 and healthy.cost_per_1k_records is not None
    for value in (healthy.total_cost, healthy.cost_per_1k_records, healthy.cost_per_completed_job):
        assert money(value, "USD") in lines[HEALTHY_SLUG]
    assert "no records" in lines[SILENT_SLUG] and "no jobs" in lines[SILENT_SLUG]
    assert "Total USD" in html and "Download CSV" in html


def test_the_csv_link_is_the_api_export_for_the_same_period(ui_client, viewer, polled_fleet):
    client = ui_client(viewer)
    html = client.get("/cost/?period=7d&group_by=class").content.decode()
    url = _csv_url(html)
    assert url.startswith("/api/v1/cost/?") and "format=csv" in url and "group_by=class" in url
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="cost-class-')
    rows = {row["key"]: row for row in csv.DictReader(io.StringIO(response.content.decode()))}
    assert set(rows) == set(_lines(html))
    assert Decimal(rows[HEALTHY_SLUG]["total_cost"]) > 0
    assert rows[SILENT_SLUG]["total_cost"] == "0.000000"


def test_presets_and_grouping(ui_client, viewer, polled_fleet):
    client = ui_client(viewer)
    with time_machine.travel(datetime(2026, 3, 4, 12, 30, tzinfo=UTC), tick=False):
        week = client.get("/cost/?period=7d").content.decode()
        month = client.get("/cost/?period=30d&group_by=team", headers=HX).content.decode()
    assert "Last 7 days by class" in week and 'datetime="2026-02-25T12:30:00+00:00"' in week
    assert month.lstrip().startswith('<section id="cost-report"')
    assert "Last 30 days by team" in month and 'datetime="2026-02-02T12:30:00+00:00"' in month
    teams = _lines(month)
    assert set(teams) == {"docs-platform", "search", "data-eng", "trust-safety"}


def test_a_custom_period_is_whole_utc_days(ui_client, viewer, demo_fleet):
    with time_machine.travel(datetime(2026, 3, 4, 12, 30, tzinfo=UTC), tick=False):
        html = ui_client(viewer).get("/cost/?period=custom&start=2026-02-01&end=2026-02-03").content.decode()
    assert "01 Feb 2026 – 03 Feb 2026 by class" in html
    assert 'datetime="2026-02-01T00:00:00+00:00"' in html and 'datetime="2026-02-04T00:00:00+00:00"' in html
    assert "start=2026-02-01T00%3A00%3A00%2B00%3A00" in _csv_url(html).replace(":", "%3A").replace("+", "%2B")


def test_a_bad_custom_period_is_explained_and_today_shown(ui_client, viewer, demo_fleet):
    client = ui_client(viewer)
    html = client.get("/cost/?period=custom&start=2026-02-05&end=2026-02-01").content.decode()
    assert "The start date must not be after the end date. Showing today instead." in html
    assert "Today by class" in html
    assert "needs both a start and an end date" in client.get("/cost/?period=custom").content.decode()


def test_classes_without_rates_say_so(ui_client, viewer, db):
    WorkloadClassFactory(slug="unpriced", cost_rates=None)
    WorkloadClassFactory(slug="priced", cost_rates=CostRatesFactory(name="eur", currency="EUR"))
    html = ui_client(viewer).get("/cost/").content.decode()
    assert "no cost rates" in _lines(html)["unpriced"]
    assert "Total EUR" in html and "1 line without cost rates" in html


def test_queries_do_not_grow_with_the_number_of_classes(ui_client, viewer, db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = ui_client(viewer)
    for _ in range(3):
        WorkloadClassFactory()
    client.get("/cost/")
    with CaptureQueriesContext(connection) as few:
        client.get("/cost/?period=30d")
    for _ in range(20):
        WorkloadClassFactory()
    with CaptureQueriesContext(connection) as many:
        client.get("/cost/?period=30d")
    assert len(many.captured_queries) == len(few.captured_queries)


def test_instance_time_of_an_unhealthy_pool_is_shown_as_waste(db, ui_client, viewer):
    """The pool was unhealthy from 10:05 to 10:20 (the health check's audit events): its 15
    minutes of two instances are waste, part of the totals, in the screen and the API."""
    from datetime import timedelta

    from tests.factories import WorkloadClassFactory
    from workloads.models import AuditEvent, MetricRollup, Resolution

    rates = CostRatesFactory(vcpu_second=Decimal("0.001"), gib_second=Decimal("0"))
    wc = WorkloadClassFactory(slug="crashy", cost_rates=rates, vcpu_per_instance=Decimal("1"))
    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    for minute in range(30):
        MetricRollup.objects.create(
            workload_class=wc,
            resolution=Resolution.MINUTE,
            bucket_start=start + timedelta(minutes=minute),
            instances=2,
            instance_seconds=120,
            fetched_at=start,
        )
    for action, minute in (("pool.unhealthy", 5), ("pool.recovered", 20)):
        event = AuditEvent.objects.create(action=action, target_type="workload_class", workload_class_slug="crashy")
        AuditEvent.objects.filter(pk=event.pk).update(occurred_at=start + timedelta(minutes=minute))
    now = start + timedelta(minutes=30)
    [line] = cost_report(start=start, end=now, now=now).lines
    assert line.instance_seconds == Decimal("3600.000") and line.waste_instance_seconds == Decimal("1800.000")
    assert line.waste_cost == Decimal("1.800000") and line.compute_cost == Decimal("3.600000")
    with time_machine.travel(now, tick=False):
        html = ui_client(viewer).get("/cost/?period=today").content.decode()
        api = ui_client(viewer).get("/api/v1/cost/?start=2026-03-02T10:00:00Z&end=2026-03-02T10:30:00Z").json()
    assert "0.5 h wasted" in _lines(html)["crashy"] and "while unhealthy" in _lines(html)["crashy"]
    assert api["lines"][0]["waste_instance_seconds"] == "1800.000" and api["lines"][0]["waste_cost"] == "1.800000"
