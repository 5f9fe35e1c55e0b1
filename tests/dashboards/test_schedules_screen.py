"""The schedules screen: a class and a time zone (GET, works without JavaScript), the week grid,
the windows in the order they win, overlaps, the next change, and the controller preview slot."""

import re
from datetime import UTC, datetime

import time_machine

from tests.dashboards.conftest import HX
from tests.factories import SchedulePolicyFactory, WorkloadClassFactory

SATURDAY = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)


def _cells(html: str) -> list[str]:
    return re.findall(r'<td class="sched [^"]*"\s+title="([^"]*)"', html)


def test_the_first_class_in_utc_by_default(ui_client, viewer, demo_fleet):
    with time_machine.travel(SATURDAY, tick=False):
        html = ui_client(viewer).get("/schedules/").content.decode()
    assert "batch-enrichment" in re.search(r"<h2>.*?</h2>", html, re.S).group(0)  # first by slug
    assert "hours in <strong>UTC</strong>" in html
    assert len(_cells(html)) == 168
    assert html.count("sched-now") == 1
    assert 'id="target-preview"' in html and "Without fresh telemetry" in html
    assert html.count('class="bar"') == 168 and 'class="grid compact preview-changes"' in html


def test_the_grid_for_a_class_in_the_chosen_zone(ui_client, viewer, demo_fleet):
    with time_machine.travel(SATURDAY, tick=False):
        html = ui_client(viewer).get("/schedules/?workload_class=document-processing&tz=Europe/Paris").content.decode()
    cells = _cells(html)
    # Monday 23:00 Paris: the nightly window (22:00-06:00 Paris); noon: the weekday baseline.
    assert cells[23].startswith("Mon 23:00: 0–4, nightly window")
    assert cells[12].startswith("Mon 12:00: 1–12, baseline")
    # Saturday: both the weekend and the nightly windows are open at night, and the weekend wins.
    assert cells[5 * 24 + 23].startswith("Sat 23:00: 0–3, weekend window; open: weekend, nightly (weekend wins)")
    assert "weekend wins over nightly (higher priority (10 &gt; 0))" in html
    assert re.search(r"<dt>Next change</dt><dd><time[^>]*>Mon 30 Nov 00:00</time>", html)  # local to Paris


def test_htmx_gets_only_the_grid(ui_client, viewer, demo_fleet):
    response = ui_client(viewer).get("/schedules/?workload_class=indexing-pipeline", headers=HX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="schedule-grid"') and "<html" not in html
    assert "indexing-pipeline" in html and len(_cells(html)) == 168


def test_an_unknown_time_zone_is_explained_and_utc_used(ui_client, viewer, demo_fleet):
    html = ui_client(viewer).get("/schedules/?tz=Mars/Olympus").content.decode()
    assert "is not an IANA time zone" in html and "Showing UTC." in html
    assert "hours in <strong>UTC</strong>" in html


def test_a_class_without_windows_has_the_baseline_all_week(ui_client, viewer, db):
    WorkloadClassFactory(slug="flat-class", min_instances=2, max_instances=3)
    html = ui_client(viewer).get("/schedules/?workload_class=flat-class").content.decode()
    assert all(": 2–3, baseline" in cell for cell in _cells(html))
    assert "No schedule windows: the baseline applies all week." in html and "No overlaps this week." in html


def test_no_classes_and_unknown_classes(ui_client, viewer, db):
    assert "No workload classes yet" in ui_client(viewer).get("/schedules/").content.decode()
    WorkloadClassFactory(slug="only-one")
    html = ui_client(viewer).get("/schedules/?workload_class=gone").content.decode()
    assert "only-one" in html  # an unknown choice falls back to the first class


def test_queries_do_not_grow_with_the_number_of_classes_or_windows(ui_client, viewer, db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = ui_client(viewer)
    wc = WorkloadClassFactory(slug="aaa-first")
    SchedulePolicyFactory(workload_class=wc)
    client.get("/schedules/")
    with CaptureQueriesContext(connection) as few:
        client.get("/schedules/")
    for _ in range(15):
        SchedulePolicyFactory(workload_class=WorkloadClassFactory())
    for n in range(5):
        SchedulePolicyFactory(workload_class=wc, name=f"extra-{n}")
    with CaptureQueriesContext(connection) as many:
        client.get("/schedules/")
    assert len(many.captured_queries) == len(few.captured_queries)
