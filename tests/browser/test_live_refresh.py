"""Live refreshes in Chromium keep what the user was doing: keyboard focus and open <details> survive
the periodic swaps (idiomorph's morph), the triage panel takes focus when it opens and Esc closes
it, and the per-row "data N s old" keeps counting in the browser while refreshes fail."""

import re

from playwright.sync_api import expect

from dashboards.charts import seconds_label
from tests.browser.test_oncall_flows import dead_letters  # noqa: F401 (a fixture)
from tests.dashboards.helpers import (
    BREACHED_SLUG,
    HEALTHY_SLUG,
    feed_demo_telemetry,
    registered_steps_handler,
    request_steps_action,
)


def _refreshed(page, path_part: str, seconds: int):
    """Let the page's clock run `seconds` and wait for the live refresh it triggers."""
    with page.expect_response(lambda r: path_part in r.url and r.request.headers.get("hx-request") == "true"):
        page.clock.fast_forward(seconds * 1000)


# What has keyboard focus: "body", or the id of the nearest element with one, the tag and the text.
ACTIVE = """(() => {
  const a = document.activeElement;
  return a === document.body ? 'body' : (a.closest('[id]') || a).id + ' ' + a.tagName + ' ' + a.textContent.trim();
})()"""


def test_focus_survives_the_overviews_refresh(logged_in_page, demo_fleet):
    from tests.factories import WorkloadClassFactory

    page = logged_in_page("viewer")
    page.clock.install()
    page.goto("/?sort=name")
    link = page.locator(f"#fleet-row-{HEALTHY_SLUG} .class-cell a")
    link.focus()
    before = page.evaluate(ACTIVE)
    assert before.startswith(f"fleet-row-{HEALTHY_SLUG} A")

    WorkloadClassFactory(slug="arrived-later", name="Arrived later", owner_team="new-team")
    _refreshed(page, "sort=name", 16)
    expect(page.locator("#fleet-rows tr")).to_have_count(5)  # the refresh did land
    assert page.evaluate(ACTIVE) == before
    assert page.evaluate(
        f"document.activeElement === document.querySelector('#fleet-row-{HEALTHY_SLUG} .class-cell a')"
    )
    # The next Tab goes on from there, not from the top of the page.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('tr') && document.activeElement.closest('tr').id") in (
        f"fleet-row-{HEALTHY_SLUG}",
        "fleet-row-indexing-pipeline",
    )
    assert page.js_errors == []


def test_focus_and_an_open_marker_list_survive_the_class_charts_refresh(logged_in_page, demo_fleet):
    from django.utils import timezone

    from workloads.models import WorkloadClass
    from workloads.services.actions import action_run

    feed_demo_telemetry(timezone.now())
    wc = WorkloadClass.objects.get(slug=BREACHED_SLUG)
    with registered_steps_handler():
        page = logged_in_page("operator")
        action_run(action_id=request_steps_action(actor=page.user, items=["pool-a"], workload_class=wc).pk)
    page.clock.install()
    page.goto(f"/classes/{BREACHED_SLUG}/?range=6h")
    page.wait_for_function("() => window.ControlPlaneCharts && ControlPlaneCharts.count() === 6")
    markers = page.locator("#class-charts > details.chart-markers")
    markers.locator("summary").click()
    expect(markers).to_have_attribute("open", "")
    summary_focused = (
        "document.activeElement === document.querySelector('#class-charts > details.chart-markers summary')"
    )
    assert page.evaluate(summary_focused)

    _refreshed(page, f"/classes/{BREACHED_SLUG}/", 61)
    page.wait_for_function(
        "() => ControlPlaneCharts.count() === 6 && document.querySelectorAll('#class-charts canvas').length >= 6"
    )
    expect(markers).to_have_attribute("open", "")
    assert page.evaluate(summary_focused)
    assert page.js_errors == []


def test_focus_survives_the_dead_letter_groups_refresh(logged_in_page, dead_letters):  # noqa: F811
    page = logged_in_page("viewer")
    page.clock.install()
    page.goto("/dead-letters/")
    link = page.locator(f"#dl-group-{HEALTHY_SLUG}-sig-timeout .dl-error a")
    link.focus()
    before = page.evaluate(ACTIVE)
    _refreshed(page, "/dead-letters/", 31)
    assert page.evaluate(ACTIVE) == before
    assert page.js_errors == []


def test_the_triage_panel_takes_focus_and_esc_closes_it(logged_in_page, dead_letters):  # noqa: F811
    page = logged_in_page("operator")
    page.goto(f"/dead-letters/messages/?workload_class={HEALTHY_SLUG}&error_signature=sig-timeout")
    page.get_by_label("Select every dead letter on this page").check()
    opener = page.get_by_role("button", name="Replay selected…")
    opener.focus()
    page.keyboard.press("Enter")
    panel = page.locator("#triage-panel")
    expect(panel.get_by_role("heading", name="Replay 4 dead letters?")).to_be_visible()
    page.wait_for_function("() => document.getElementById('triage-panel').contains(document.activeElement)")
    assert page.evaluate("document.activeElement.textContent") == "Replay 4 dead letters?"

    # A dry run inside the panel keeps focus in the panel.
    panel.get_by_role("button", name="Dry run").click()
    expect(panel.get_by_test_id("dry-run-summary")).to_be_visible()
    page.wait_for_function("() => document.getElementById('triage-panel').contains(document.activeElement)")

    page.keyboard.press("Escape")
    expect(panel).to_be_empty()
    expect(opener).to_be_focused()

    # The Cancel link does the same.
    opener.click()
    expect(panel.get_by_role("link", name="Cancel")).to_be_visible()
    panel.get_by_role("link", name="Cancel").click()
    expect(panel).to_be_empty()
    expect(opener).to_be_focused()
    assert page.js_errors == []


def test_the_rows_data_age_keeps_counting_while_refreshes_fail(logged_in_page, demo_fleet, settings):
    from django.utils import timezone

    feed_demo_telemetry(timezone.now())
    page = logged_in_page("viewer")
    page.clock.install()
    page.goto("/")
    age = page.locator(f"#fleet-row-{HEALTHY_SLUG} .row-age")
    expect(age).to_have_text(re.compile(r"^data \d+ s old$"))
    first = int(re.search(r"\d+", age.text_content()).group(0))

    page.route(re.compile(r"/\?|/$"), lambda route: route.fulfill(status=500, body="boom"))
    page.clock.fast_forward(16_000)
    expect(page.locator(".toast-error")).to_contain_text("Could not refresh live data")
    page.locator(".toast-error").get_by_role("button", name="Dismiss message").click()
    # With the note gone, the age still says how old the numbers are: it is counted here.
    page.clock.fast_forward(5 * 60_000)
    expect(age).to_have_text(re.compile(r"^data [56] min old$"))
    assert int(re.search(r"\d+", age.text_content()).group(0)) * 60 > first
    expect(age).not_to_have_class(re.compile("metric-age-stale"))
    page.clock.fast_forward(settings.TELEMETRY_STALE_AFTER_SECONDS * 1000)
    expect(age).to_have_class(re.compile("metric-age-stale"))
    assert page.js_errors == []


def test_age_labels_read_like_the_servers(logged_in_page, demo_fleet):
    page = logged_in_page("viewer")
    page.goto("/")
    cases = {0: "0 s", 59.9: "59 s", 150: "2 min", 7200: "2 h", 10800: "3 h", 9000: "2.5 h", 3 * 86400: "3 d"}
    labels = page.evaluate("(cases) => cases.map((s) => ControlPlane.ageLabel(s * 1000))", list(cases))
    assert labels == list(cases.values())


def test_durations_read_like_the_servers(logged_in_page, demo_fleet):
    # The units come from the page (<html data-duration-units>), the digits follow seconds_label.
    page = logged_in_page("viewer")
    page.goto("/")
    cases = [0.25, 5, 59.9, 90, 150, 300, 5400, 9000, 21600, 86400, 129600, 172800]
    labels = page.evaluate("(cases) => cases.map((s) => ControlPlane.formatDuration(s))", cases)
    assert labels == [seconds_label(s) for s in cases]
