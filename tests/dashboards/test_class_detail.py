"""The class detail page: settings, SLOs, schedule with the next change, charts with a range
selector (an htmx partial), recent actions; and who sees which buttons."""

import json
import re
from datetime import UTC, datetime, time

import pytest
import time_machine
from django.test import Client

from tests.dashboards.conftest import HX
from tests.dashboards.helpers import BREACHED_SLUG, feed_demo_telemetry, request_steps_action
from tests.factories import SchedulePolicyFactory, WorkloadClassFactory

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
    assert "No metrics polled for this class yet." in html
    assert html.count('<span class="muted">not evaluated yet</span>') == 3  # SLO cards before the first evaluation
    assert "No burn-rate alert is open." in html
    assert "Recent actions" in html and "No actions yet" in html
    assert "Recent changes" in html and "class created" in html


def test_unknown_classes_are_a_404_page_that_links_back(ui_client, viewer):
    response = ui_client(viewer).get("/classes/no-such-class/")
    assert response.status_code == 404
    assert b"Back to the fleet" in response.content and b"/classes/no-such-class/" in response.content


def test_htmx_gets_only_the_charts_for_the_chosen_range(ui_client, viewer, demo_fleet):
    response = ui_client(viewer).get(URL + "?range=7d", headers=HX)
    html = response.content.decode().strip()
    assert response.status_code == 200
    assert html.startswith('<div id="class-charts" hx-get="/classes/document-processing/?range=7d"')
    assert 'hx-trigger="every 60s"' in html.splitlines()[0]  # the charts follow new rollups
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
    # The product's own edit screen, not the Django admin (tests/browser/test_class_edit.py).
    assert '<a class="btn" href="/classes/document-processing/edit/">Edit class</a>' in html


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


def test_recent_changes_show_who_changed_what(ui_client, admin_user, viewer, demo_fleet):
    from workloads.models import WorkloadClass
    from workloads.services.classes import workload_class_update

    wc = WorkloadClass.objects.get(slug="document-processing")
    workload_class_update(actor=admin_user, workload_class=wc, fields={"max_instances": 14})
    html = ui_client(viewer).get(URL).content.decode()
    timeline = html[html.index('<ol class="timeline">') :]
    first = timeline[: timeline.index("</li>")]
    assert "settings changed</strong> by ada-admin" in first and "changed max instances" in first


def _chart_payload(html: str, key: str) -> dict:
    found = re.search(rf'<script id="chart-data-{key}" type="application/json">(.*?)</script>', html)
    return json.loads(found.group(1))


def test_polled_telemetry_is_embedded_as_json_for_the_chart_script(ui_client, viewer, polled_fleet):
    # Drawn at the poll's instant: a page drawn after the clock crossed into the next 2-minute step
    # would end on an empty step (the poll covers whole minutes only).
    with time_machine.travel(polled_fleet, tick=False):
        html = ui_client(viewer).get(f"/classes/{BREACHED_SLUG}/?range=6h").content.decode()
    assert html.count("data-chart=") == 6 and "No data yet" not in html
    queue_age = _chart_payload(html, "queue-age")
    assert queue_age["threshold"] == {"value": 10.0, "label": "SLO p99 < 10 s"}
    assert queue_age["unit"] == "s"
    assert len(queue_age["x"]) in (180, 181)  # 6 hours in 2-minute steps: bounded, whatever the history
    values = queue_age["series"][0]["values"]
    assert values[-1] == 40.0 and values[0] is None  # three hours of data, then the gap before it
    # The time axis starts at the first point with data, not three empty hours before it.
    first = next(t for t, v in zip(queue_age["x"], values, strict=True) if v is not None)
    assert queue_age["start"] == first and 2.9 * 3600 <= queue_age["end"] - queue_age["start"] <= 3.1 * 3600
    assert 'aria-label="Queue age: Oldest unacked latest 40; SLO p99 &lt; 10 s"' in html
    throughput = _chart_payload(html, "throughput")
    assert throughput["unit"] == "per_min" and throughput["series"][0]["values"][-1] == 30.0
    assert _chart_payload(html, "cost")["unit"] == "USD"
    assert "one point per 2 min" in html and "Newest sample" in html


def test_slo_cards_show_attainment_budget_burn_rates_and_alerts(ui_client, viewer, polled_fleet):
    html = ui_client(viewer).get(f"/classes/{BREACHED_SLUG}/").content.decode()
    card = html[html.index('id="slo-queue_age-title"') : html.index('id="slo-completion_latency-title"')]
    assert "0.000 %</strong> · below the target" in card  # 40 s against 10 s in every minute
    assert ">overspent</strong>" in card
    assert "overspent by 3 h" in card  # in minutes: queue-age budgets are minutes
    assert "exhausted</span>" in card
    windows = re.findall(r'<th scope="col">(\w+)</th>', card)
    assert windows == ["5m", "30m", "1h", "6h", "3d"]  # shortest first, whatever order the JSON kept
    assert '<td class="count-bad">1000×</td>' in card
    success = html[html.index('id="slo-success_ratio-title"') :]
    assert "100.000 %</strong> · meets the target" in success and "jobs left" in success
    assert "each unit of work once, by its final outcome" in success
    assert '<strong data-testid="attempt-failure-rate">0.0 %</strong>' in success
    alerts = html[html.index('id="alerts-title"') : html.index('id="charts-title"')]
    assert alerts.count('class="alert-item') >= 2
    assert alerts.index("alert-page") < alerts.index("alert-ticket")  # pages first


def test_a_stale_class_says_so_above_its_charts(ui_client, viewer, polled_fleet):
    html = ui_client(viewer).get("/classes/batch-enrichment/").content.decode()
    assert '<p class="metric-age-note is-stale">' in html
    assert "no new metrics since" in html and "the values are not current" in html


def test_actions_and_config_changes_mark_the_charts(ui_client, operator, admin_user, polled_fleet, steps_handler):
    from workloads.models import WorkloadClass
    from workloads.services.actions import action_run
    from workloads.services.classes import workload_class_update

    wc = WorkloadClass.objects.get(slug=BREACHED_SLUG)
    action = request_steps_action(actor=operator, items=["pool"], workload_class=wc)
    action_run(action_id=action.pk)
    workload_class_update(actor=admin_user, workload_class=wc, fields={"max_instances": 30})
    html = ui_client(operator).get(f"/classes/{BREACHED_SLUG}/").content.decode()
    markers = _chart_payload(html, "instances")["markers"]
    assert {(m["kind"], m["label"]) for m in markers} == {
        ("change", "class created (system)"),  # the demo fleet was seeded moments ago
        ("change", "settings changed (ada-admin)"),
        ("action", f"test_ui_steps #{action.pk} (otto-operator, succeeded)"),
    }
    assert [m["t"] for m in markers] == sorted(m["t"] for m in markers)
    assert "3 markers on the time axis" in html
    recent = html[html.index('id="recent-title"') :]
    assert f'href="/actions/{action.pk}/"' in recent and "succeeded" in recent
    assert f'href="/actions/?workload_class={BREACHED_SLUG}"' in recent


def test_queries_do_not_grow_with_history(ui_client, viewer, demo_fleet):
    """Three hours of minute rollups or thirty days of hourly ones: the same queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    client = ui_client(viewer)
    url = f"/classes/{BREACHED_SLUG}/?range=30d"
    now = timezone.now()
    feed_demo_telemetry(now, window_minutes=60)
    client.get(url)
    with CaptureQueriesContext(connection) as short:
        client.get(url)
    _add_hourly_history(BREACHED_SLUG, days=30, now=now)
    with CaptureQueriesContext(connection) as long:
        html = client.get(url).content.decode()
    # + 4 for the on-call panels: the last pause, the pool control, the open dead letters, the snapshots;
    # + 1 for the failing-notification-channel banner every page shows; + 1 for the runtime's observed figures;
    # + 1 for the deployments (markers and list); + 1 for the user's clock (UTC or local); + 1 for the
    # navigation's count of dead letters that need attention (every page); + 1 for the viewer's roles by
    # environment (a class's page follows the role in its environment).
    assert len(long.captured_queries) == len(short.captured_queries) <= 24
    assert len(_chart_payload(html, "queue-age")["x"]) in (240, 241)  # 30 days in 3-hour steps


def _add_hourly_history(slug, *, days, now):
    from datetime import timedelta

    from workloads.models import MetricRollup, WorkloadClass

    wc = WorkloadClass.objects.get(slug=slug)
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    MetricRollup.objects.bulk_create(
        MetricRollup(
            workload_class=wc,
            resolution="hour",
            bucket_start=first + timedelta(hours=h),
            oldest_unacked_age_seconds=12.0,
            backlog=10.0,
            instances=1.0,
            instance_seconds=3600.0,
            completed=100,
            fetched_at=now,
        )
        for h in range(days * 24 - 6)
    )


def test_it_shows_what_is_observed_of_the_runtime_and_what_is_missing(ui_client, viewer):
    WorkloadClassFactory(slug="legacy-fn", runtime="cloud_functions", runtime_resource="process-doc")
    html = ui_client(viewer).get("/classes/legacy-fn/").content.decode()
    assert "runs on Cloud Run functions / Cloud Functions" in html
    assert 'id="observation"' in html
    assert "cloudfunctions.googleapis.com/function/execution_times" in html
    assert "missing: no data" in html
    assert "observed only, never provisioned or scaled" in html
