"""The telemetry-backed screens end to end in Chromium: live numbers on the overview after a poll,
class charts with their SLO line and action markers, an action's progress bar polling to the end,
the cost CSV, audit filters and the schedule grid. Screenshots land in var/screenshots/."""

import csv
import io
import re
import time
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.dashboards.helpers import (
    BREACHED_SLUG,
    HEALTHY_SLUG,
    STALE_SLUG,
    feed_demo_telemetry,
    registered_steps_handler,
    request_steps_action,
)


@pytest.fixture
def steps_handler():
    with registered_steps_handler():
        yield


def _row(page, slug):
    return page.locator("#fleet-rows tr").filter(has=page.locator(".slug", has_text=re.compile(f"^{slug}$")))


def test_the_overview_shows_live_numbers_after_a_poll(logged_in_page, demo_fleet):
    """The whole path on the embedded local provider: messages wait in the class's queue, a
    metrics poll turns them into rollups, and the open page's 15 s refresh shows them."""
    from django.utils import timezone

    from workloads.models import WorkloadClass
    from workloads.providers.base import OutboundMessage
    from workloads.providers.local import LocalQueue, LocalWorkerPools
    from workloads.providers.specs import pool_spec, queue_spec
    from workloads.services.polling import metrics_poll

    page = logged_in_page("viewer")
    page.clock.install()
    page.goto("/")
    row = _row(page, HEALTHY_SLUG)
    expect(row.locator(".status")).to_have_text(re.compile("No data"))

    # Published three minutes ago (a backdated clock), so the last whole minute the poll reads
    # already holds them; the pool has had 2 instances since then.
    wc = WorkloadClass.objects.get(slug=HEALTHY_SLUG)
    earlier = timezone.now() - timedelta(minutes=3)
    queue = LocalQueue(now=lambda: earlier)
    queue.ensure_resources(queue_spec(wc))
    queue.publish(queue_spec(wc), [OutboundMessage(data=b"{}") for _ in range(37)])
    LocalWorkerPools(now=lambda: earlier).ensure(pool_spec(wc), initial_instances=2)
    metrics_poll(now=timezone.now(), window_minutes=10)

    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true"):
        page.clock.fast_forward(16_000)
    expect(row.locator('[data-col="backlog"]')).to_have_text("37")
    expect(row.locator('[data-col="instances"]')).to_contain_text("2")
    expect(row.locator('[data-col="queue_age"]')).to_contain_text(re.compile(r"\d+(\.\d+)? (s|min)\s*/ 2 min"))
    expect(row.locator(".status")).not_to_have_text(re.compile("No data"))
    expect(row.locator(".row-age")).to_have_text(re.compile(r"data \d+(\.\d+)? (s|min) old"))
    expect(page.locator("#fleet-updated")).to_contain_text("data as of")
    screenshot(page, "fleet-overview-live")
    assert page.js_errors == []


def test_statuses_explain_themselves_and_a_stale_class_never_looks_healthy(logged_in_page, demo_fleet):
    from django.utils import timezone

    from workloads.models import SloAlert

    feed_demo_telemetry(timezone.now())
    page = logged_in_page("viewer")
    page.goto("/")
    stale = _row(page, STALE_SLUG)
    expect(stale.locator(".status")).to_have_text(re.compile("Stale"))
    expect(stale.locator(".status-reason")).to_contain_text("No new metrics for 40 min")
    expect(stale).to_have_class(re.compile("row-stale"))
    breached = _row(page, BREACHED_SLUG)
    expect(breached.locator(".status")).to_have_text(re.compile("Breached"))
    # The reason shows on keyboard focus too, not only on hover.
    breached.locator(".status").focus()
    expect(breached.locator(".status-tip")).to_be_visible()
    expect(breached.locator(".status-tip")).to_contain_text("Paging")
    screenshot(page, "fleet-overview-statuses")
    # Without a paging alert, a breach says what is wrong: attainment, not "below its target" (which
    # reads like good news for a queue age).
    SloAlert.objects.filter(slo__workload_class__slug=BREACHED_SLUG).delete()
    page.reload()
    expect(breached.locator(".status-reason")).to_have_text(
        re.compile(r"^(Queue age|Completion latency): attainment below target over the SLO window\.$")
    )
    dark = logged_in_page("viewer", color_scheme="dark")
    dark.goto("/")
    screenshot(dark, "fleet-overview-statuses-dark")


def test_class_charts_draw_the_slo_threshold_and_action_markers(logged_in_page, demo_fleet, steps_handler):
    from django.utils import timezone

    from workloads.models import WorkloadClass
    from workloads.services.actions import action_run
    from workloads.services.classes import workload_class_update

    feed_demo_telemetry(timezone.now())
    wc = WorkloadClass.objects.get(slug=BREACHED_SLUG)
    page = logged_in_page("operator")
    action = request_steps_action(actor=page.user, items=["pool-a"], workload_class=wc)
    action_run(action_id=action.pk)
    workload_class_update(actor=page.user, workload_class=wc, fields={"max_instances": 24})

    page.goto(f"/classes/{BREACHED_SLUG}/?range=6h")
    page.wait_for_function("() => window.ControlPlaneCharts && ControlPlaneCharts.count() === 6")
    expect(page.locator("#chart-queue-age .chart-threshold")).to_contain_text("SLO p99 < 10 s")
    # The threshold is drawn where the SLO says: sample the canvas along the line's height.
    drawn = page.evaluate(
        """() => {
        const container = document.querySelector('#chart-queue-age .chart-plot');
        const plot = ControlPlaneCharts.plotFor(container);
        const y = Math.round(plot.valToPos(10, 'y', true));
        const ctx = plot.ctx;
        let red = 0;
        for (let x = plot.bbox.left + 2; x < plot.bbox.left + plot.bbox.width - 2; x += 3) {
          const [r, g, b] = ctx.getImageData(x, y, 1, 1).data;
          if (r > 150 && g < 90 && b < 90) red++;
        }
        return {red, max: plot.scales.y.max, series: plot.data[1].filter(v => v != null).length};
    }"""
    )
    assert drawn["red"] > 20, drawn  # a dashed line: many red pixels along y(10 s)
    assert drawn["max"] >= 40 and drawn["series"] >= 85  # three hours of 2-minute steps
    markers = page.locator(".chart-markers li")
    expect(markers.filter(has_text=f"#{action.pk}")).to_have_count(1)
    expect(markers.filter(has_text="settings changed")).to_have_count(1)
    expect(page.locator("#slo-queue_age-title")).to_be_visible()
    expect(page.locator(".slo-card").first).to_contain_text("Burn rate")
    expect(page.locator(".alert-item").first).to_contain_text("page")
    expect(page.locator("#recent-title ~ .table-wrap")).to_contain_text(f"#{action.pk}")
    screenshot(page, "class-detail-live")

    page.get_by_role("navigation", name="Time range").get_by_role("link", name="30d").click()
    expect(page).to_have_url(re.compile(r"range=30d"))
    page.wait_for_function("() => window.ControlPlaneCharts && ControlPlaneCharts.count() === 6")
    expect(page.locator("#class-charts .muted").first).to_contain_text("one point per 3 h")
    assert page.js_errors == []


def test_an_actions_progress_bar_reaches_done_while_the_page_polls(logged_in_page, demo_fleet, steps_handler):
    from workloads.services.actions import action_run

    page = logged_in_page("operator")
    action = request_steps_action(actor=page.user, items=[f"pool-{n}" for n in range(6)], interval=0.7)
    polls = []
    page.on("request", lambda r: polls.append(time.monotonic()) if "/progress/" in r.url else None)
    page.goto(f"/actions/{action.pk}/")
    progress = page.locator("#action-progress")
    expect(progress).to_contain_text("pending")
    expect(progress.get_by_role("button", name="Cancel action")).to_be_visible()
    screenshot(page, "action-detail-pending")

    # Runs in this thread (about 3.5 s of steps) while the browser keeps polling the live server.
    finished = action_run(action_id=action.pk, sleep=time.sleep)
    assert finished.state == "succeeded"
    expect(progress).to_contain_text("succeeded", timeout=6_000)
    expect(progress.locator("progress")).to_have_attribute("value", "100")
    expect(progress).to_contain_text("6 done of 6")
    expect(progress.get_by_role("button", name="Cancel action")).to_have_count(0)
    expect(page.locator("#action-steps tbody tr")).to_have_count(6)
    expect(page.locator("#action-steps")).to_contain_text("done")
    assert len(polls) >= 2  # it polled while the action ran
    settled = len(polls)
    page.wait_for_timeout(2_600)
    assert len(polls) == settled, "the page kept polling after the action ended"
    screenshot(page, "action-detail-done")
    assert page.js_errors == []


def test_an_operator_cancels_a_running_action(logged_in_page, demo_fleet, steps_handler):
    from workloads.models import ActionState

    page = logged_in_page("operator")
    action = request_steps_action(actor=page.user, items=["a", "b"])
    page.goto(f"/actions/{action.pk}/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel action").click()
    expect(page.locator("#action-progress")).to_contain_text("cancelled")
    expect(page.locator(".toast")).to_contain_text("cancelled before it started")
    action.refresh_from_db()
    assert action.state == ActionState.CANCELLED

    viewer = logged_in_page("viewer")
    viewer.goto(f"/actions/{action.pk}/")
    expect(viewer.get_by_role("button", name="Cancel action")).to_have_count(0)


def test_the_actions_list_filters_and_links_to_details(logged_in_page, demo_fleet, steps_handler):
    from workloads.models import WorkloadClass
    from workloads.services.actions import action_run

    page = logged_in_page("operator")
    wc = WorkloadClass.objects.get(slug=HEALTHY_SLUG)
    done = request_steps_action(actor=page.user, items=["a", "bad-b", "c"], workload_class=wc)
    action_run(action_id=done.pk)
    request_steps_action(actor=page.user, items=["x"])
    page.goto("/actions/")
    expect(page.locator("#action-rows tbody tr")).to_have_count(2)
    screenshot(page, "actions-list")
    page.get_by_label("State").select_option("partially_failed")
    expect(page.locator("#action-rows tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"state=partially_failed"))
    page.locator("#action-rows tbody a", has_text=f"#{done.pk}").click()
    expect(page.locator("#action-progress")).to_contain_text("partially failed")
    page.get_by_label("Failed first").check()
    expect(page.locator("#action-steps tbody tr").first).to_contain_text("bad-b refused the change")
    screenshot(page, "action-detail-partial")


def test_the_cost_screen_downloads_its_csv(logged_in_page, demo_fleet):
    from django.utils import timezone

    feed_demo_telemetry(timezone.now())
    page = logged_in_page("viewer")
    page.goto("/cost/")
    expect(page.get_by_role("heading", name=re.compile("Today by class"))).to_be_visible()
    table = page.locator("table.cost")
    expect(table.locator("tbody tr")).to_have_count(4)
    expect(table).to_contain_text(HEALTHY_SLUG)
    screenshot(page, "cost")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert re.fullmatch(r"cost-class-\d{8}T\d{4}-\d{8}T\d{4}\.csv", download.suggested_filename)
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    by_key = {row["key"]: row for row in rows}
    assert set(by_key) == {"batch-enrichment", "document-processing", "indexing-pipeline", "policy-evaluation"}
    assert float(by_key[HEALTHY_SLUG]["total_cost"]) > 0 and by_key[HEALTHY_SLUG]["currency"] == "USD"

    page.get_by_role("radio", name="Team").check()  # group by team: the report swaps in place
    expect(page.get_by_role("heading", name=re.compile("Today by team"))).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(4)
    page.get_by_role("radio", name="Last 7 days").check()
    expect(page).to_have_url(re.compile(r"period=7d"))
    expect(page.get_by_role("heading", name=re.compile("Last 7 days by team"))).to_be_visible()
    screenshot(page, "cost-by-team")
    assert page.js_errors == []


def test_the_audit_log_filters_and_shows_diffs(logged_in_page, demo_fleet):
    from workloads.models import WorkloadClass
    from workloads.services.classes import workload_class_update

    page = logged_in_page("admin")
    wc = WorkloadClass.objects.get(slug=HEALTHY_SLUG)
    slos = [
        {
            "kind": s.kind,
            "percentile": s.percentile,
            "threshold_seconds": s.threshold_seconds,
            "target_percent": s.target_percent,
            "window_days": s.window_days,
        }
        for s in wc.slos.all()
    ]
    for slo in slos:
        if slo["kind"] == "queue_age":
            slo["threshold_seconds"] = 90.0
    workload_class_update(actor=page.user, workload_class=wc, fields={"max_instances": 16}, slos=slos)

    page.goto("/audit/")
    expect(page.locator(".audit-list > li", has_text="workload_class.create")).to_have_count(4)
    page.get_by_label("Actor").fill(page.user.username)
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator(".audit-list > li")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"actor="))
    entry = page.locator(".audit-list > li").first
    entry.locator("summary").click()
    diff = entry.locator("table.diff")
    expect(diff.locator("tr", has_text="max_instances")).to_contain_text("12")
    expect(diff.locator("tr", has_text="max_instances")).to_contain_text("16")
    expect(diff.locator("tr", has_text="slos[queue_age].threshold_seconds")).to_contain_text("90")
    screenshot(page, "audit-log")

    page.goto("/audit/?action=workload_class.create&workload_class=indexing-pipeline")
    expect(page.locator(".audit-list > li")).to_have_count(1)
    assert page.js_errors == []


def test_the_schedule_grid_follows_the_chosen_time_zone(logged_in_page, demo_fleet):
    page = logged_in_page("viewer")
    page.goto(f"/schedules/?workload_class={HEALTHY_SLUG}")
    grid = page.locator("table.week-grid")
    expect(grid.locator("tbody tr")).to_have_count(7)
    expect(grid.locator("tbody tr").first.locator("td")).to_have_count(24)
    # The demo's nightly window is 22:00-06:00 Paris time: in UTC it opens at 21:00 or 20:00.
    monday_utc = grid.locator("tbody tr").first.locator("td")
    expect(monday_utc.nth(12)).to_have_attribute("title", re.compile("baseline"))
    expect(page.locator(".legend")).to_contain_text("nightly")
    screenshot(page, "schedules")
    page.get_by_role("combobox", name="Time zone").fill("Europe/Paris")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"tz=Europe%2FParis"))
    expect(page.locator("#schedule-grid")).to_contain_text("hours in Europe/Paris")
    expect(grid.locator("tbody tr").first.locator("td").nth(23)).to_have_attribute("title", re.compile("nightly"))
    expect(page.locator("#target-preview")).to_contain_text("Without fresh telemetry")
    screenshot(page, "schedules-paris")
    assert page.js_errors == []


def test_the_new_screens_are_usable_on_a_phone(logged_in_page, demo_fleet, steps_handler):
    page = logged_in_page("operator", viewport=(390, 844))
    action = request_steps_action(actor=page.user, items=["a", "b"])
    for name, url in (
        ("cost", "/cost/"),
        ("audit-log", "/audit/"),
        ("actions-list", "/actions/"),
        ("action-detail", f"/actions/{action.pk}/"),
        ("schedules", f"/schedules/?workload_class={HEALTHY_SLUG}"),
    ):
        page.goto(url)
        # The page itself never scrolls sideways: wide tables and the week grid scroll in their own region.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), url
        screenshot(page, f"{name}-phone")
    assert page.js_errors == []
