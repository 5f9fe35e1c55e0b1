"""The class detail page: settings, SLOs, schedule with the next change, charts with a range
selector (an htmx partial), recent actions; and who sees which buttons."""

import json
import re
from datetime import UTC, datetime, time

import pytest
import time_machine
from django.test import Client

from tests.dashboards.conftest import HX
from tests.factories import SchedulePolicyFactory, WorkloadClassFactory
from workloads.selectors import fleet
from workloads.selectors.fleet import ClassSeries

URL = "/classes/document-processing/"


def test_it_redirects_anonymous_users_to_login(db):
    response = Client().get(URL)
    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={URL}"
    response = Client().get(URL + "?range=7d", headers=HX)
    assert response["HX-Redirect"].startswith("/accounts/login/?next=")


def test_it_refuses_users_without_a_role(ui_client, outsider, demo_fleet):
    for headers in ({}, HX):
        response = ui_client(outsider).get(URL, headers=headers)
        assert response.status_code == 403
        assert b"docs-platform" not in response.content


@pytest.mark.parametrize("persona", ["viewer", "operator", "admin_user"])
def test_every_role_sees_settings_slos_schedule_and_charts(request, ui_client, persona, demo_fleet):
    response = ui_client(request.getfixturevalue(persona)).get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Document processing" in html
    # Settings summary, from the registry.
    for text in (
        "Standard (5 min)",  # timeout tier
        "up to 5 deliveries, backoff 10 s – 5 min with jitter",
        "<code>{tenant_id}:{document_id}:{revision}</code>, deduplicated for 1 d",
        "none (unordered)",
        "1 vCPU, 2 GiB per instance",
        "cloud-run-tier1 (USD): 0.000018/vCPU-s",
    ):
        assert text in html, text
    # SLO definitions with what their error budget means.
    assert "p95 &lt; 2 min · target 99 %" in html
    assert "1 % of minutes (≈ 6.72 h) over 28 d" in html
    assert "0.5 % of jobs over 28 d" in html
    # Six charts, all honest about having no data yet.
    assert html.count('class="chart"') == 6
    assert html.count("No data yet") == 6
    assert "data-chart=" not in html  # nothing to draw, so no chart script runs
    assert "SLO p95 &lt; 2 min" in html  # the queue-age chart still names its threshold
    assert "Recent actions" in html and "class created" in html


def test_unknown_classes_are_a_404_page_that_links_back(ui_client, viewer):
    response = ui_client(viewer).get("/classes/no-such-class/")
    assert response.status_code == 404
    assert b"Back to the fleet" in response.content and b"/classes/no-such-class/" in response.content


def test_htmx_gets_only_the_charts_for_the_chosen_range(ui_client, viewer, demo_fleet):
    response = ui_client(viewer).get(URL + "?range=7d", headers=HX)
    html = response.content.decode().strip()
    assert response.status_code == 200
    assert html.startswith('<div id="class-charts">')
    assert "<html" not in html and "Settings" not in html and 'aria-label="Main"' not in html
    assert re.search(r'href="\?range=7d"[^>]*aria-current="true"', html)
    assert "last 7 days" in html
    assert "HX-Request" in response["Vary"]


def test_the_range_links_work_with_and_without_javascript(ui_client, viewer, demo_fleet):
    html = ui_client(viewer).get(URL).content.decode()
    for key in ("1h", "6h", "24h", "7d", "30d"):
        assert f'<a href="?range={key}" hx-get="?range={key}" hx-target="#class-charts"' in html
    assert re.search(r'href="\?range=6h"[^>]*aria-current="true"', html)  # the default


def test_an_unknown_range_falls_back_to_the_default(ui_client, viewer, demo_fleet):
    html = ui_client(viewer).get(URL + "?range=1y").content.decode()
    assert re.search(r'href="\?range=6h"[^>]*aria-current="true"', html)


def test_only_admins_see_the_edit_button(ui_client, viewer, operator, admin_user, demo_fleet):
    for user in (viewer, operator):
        assert b"Edit class" not in ui_client(user).get(URL).content
    html = ui_client(admin_user).get(URL).content.decode()
    assert re.search(r'<a class="btn" href="/admin/workloads/workloadclass/\d+/change/">Edit class</a>', html)


def test_the_schedule_shows_the_window_in_force_and_the_next_change(ui_client, viewer):
    wc = WorkloadClassFactory(slug="scheduled", min_instances=2, max_instances=8)
    SchedulePolicyFactory(
        workload_class=wc,
        name="nightly",
        start_time=time(22),
        end_time=time(6),
        timezone="UTC",
        min_instances=0,
        max_instances=3,
    )
    with time_machine.travel(datetime(2026, 3, 4, 21, 0, tzinfo=UTC), tick=False):  # a Wednesday
        html = ui_client(viewer).get("/classes/scheduled/").content.decode()
    assert "<strong>2–8 instances</strong> · baseline (no window open)" in html
    assert 'datetime="2026-03-04T22:00:00+00:00"' in html
    assert "(in 1\xa0hour): 0–3 instances, nightly window" in html


def test_recent_actions_show_who_changed_what(ui_client, admin_user, viewer, demo_fleet):
    from workloads.models import WorkloadClass
    from workloads.services.classes import workload_class_update

    wc = WorkloadClass.objects.get(slug="document-processing")
    workload_class_update(actor=admin_user, workload_class=wc, fields={"max_instances": 14})
    html = ui_client(viewer).get(URL).content.decode()
    timeline = html[html.index('<ol class="timeline">') :]
    first = timeline[: timeline.index("</li>")]
    assert "settings changed</strong> by ada-admin" in first and "changed max instances" in first


def test_series_from_telemetry_are_embedded_as_json_for_the_chart_script(ui_client, viewer, demo_fleet, monkeypatch):
    # class_series is the seam telemetry fills in; give it data as rollups would.
    def series(*, workload_class, start, end, step_seconds):
        x = [int(start.timestamp()) + step_seconds * i for i in range(1, 4)]
        values = {key: [None, None, None] for key in fleet.SERIES_KEYS}
        values["queue_age"] = [12.0, None, 30.5]
        return ClassSeries(x=x, values=values, fetched_at=end, newest_sample_at=end)

    monkeypatch.setattr(fleet, "class_series", series)
    html = ui_client(viewer).get(URL + "?range=1h").content.decode()
    assert 'data-chart="chart-data-queue-age"' in html
    payload = json.loads(
        re.search(r'<script id="chart-data-queue-age" type="application/json">(.*?)</script>', html).group(1)
    )
    assert payload["series"] == [{"label": "Oldest unacked", "values": [12.0, None, 30.5]}]
    assert payload["threshold"] == {"value": 120.0, "label": "SLO p95 < 2 min"}
    assert payload["unit"] == "s" and payload["end"] - payload["start"] == 3600
    assert payload["markers"] and payload["markers"][0]["label"] == "class created (system)"
    assert 'aria-label="Queue age: Oldest unacked latest 30.5; SLO p95 &lt; 2 min"' in html
    assert "data as of" in html
    assert html.count("No data yet") == 5  # the other charts have only gaps


def test_queries_are_bounded(ui_client, viewer, demo_fleet, django_assert_max_num_queries):
    client = ui_client(viewer)
    client.get(URL)
    with django_assert_max_num_queries(12):
        client.get(URL)
