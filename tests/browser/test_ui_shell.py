"""The UI shell end to end in Chromium: log in, the fleet overview, a class, roles, keyboard, dark mode,
the chart component and the live refresh. Screenshots land in var/screenshots/ for reviewers."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, screenshot

DEMO_SLUGS = ["batch-enrichment", "document-processing", "indexing-pipeline", "policy-evaluation"]


def _luminance(css_colour: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css_colour)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_an_operator_logs_in_sees_the_fleet_and_drills_into_a_class(new_page, make_browser_user, demo_fleet):
    user = make_browser_user("otto", "operator")
    page = new_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    screenshot(page, "login")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Fleet", level=1)).to_be_visible()
    rows = page.locator("#fleet-rows tr")
    expect(rows).to_have_count(4)
    assert sorted(page.locator("#fleet-rows .slug").all_inner_texts()) == DEMO_SLUGS
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Fleet")).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.locator(".account")).to_contain_text("otto")
    expect(page.locator(".account")).to_contain_text("operator")
    screenshot(page, "fleet-overview")

    # Filter without leaving the page's plain GET form; the choice survives in the URL.
    page.get_by_label("Tier").select_option("critical")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"tier=critical"))

    page.get_by_role("link", name="Async policy evaluation").click()
    expect(page.get_by_role("heading", name=re.compile("Async policy evaluation"), level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Schedule")).to_be_visible()
    expect(page.locator("#slo-queue_age-title")).to_have_text("Queue age (oldest unacked message)")
    expect(page.locator(".chart")).to_have_count(6)
    expect(page.locator(".chart .empty-state").first).to_contain_text("No data yet")
    expect(page.locator(".timeline li").first).to_contain_text("class created")
    screenshot(page, "class-detail")

    # The range selector swaps the charts in place (htmx) and keeps the URL shareable.
    page.get_by_role("navigation", name="Time range").get_by_role("link", name="7d").click()
    expect(page).to_have_url(re.compile(r"\?range=7d$"))
    expect(page.locator('.range-picker a[aria-current="true"]')).to_have_text("7d")
    expect(page.get_by_role("heading", name="Schedule")).to_be_visible()  # no full reload lost the rest
    assert page.js_errors == []


def test_a_viewer_sees_no_admin_or_action_buttons(logged_in_page, demo_fleet):
    viewer = logged_in_page("viewer")
    viewer.goto("/classes/document-processing/")
    nav = viewer.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Fleet")).to_be_visible()
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)
    expect(viewer.get_by_role("link", name="Edit class")).to_have_count(0)
    # Reset zoom (hidden until a chart is zoomed) only changes the view.
    expect(
        viewer.locator("main form[method=post], main button:not(.toast-close):not(.chart-zoom-reset)")
    ).to_have_count(0)
    screenshot(viewer, "class-detail-viewer")

    admin = logged_in_page("admin")
    admin.goto("/classes/document-processing/")
    expect(admin.get_by_role("navigation", name="Main").get_by_role("link", name="Admin")).to_be_visible()
    expect(admin.get_by_role("link", name="Edit class")).to_be_visible()


def test_a_user_without_a_role_gets_an_explanation_not_the_fleet(logged_in_page, demo_fleet):
    page = logged_in_page(None)
    response = page.goto("/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="You don’t have access to this page")).to_be_visible()
    expect(page.locator("#fleet-rows")).to_have_count(0)
    screenshot(page, "error-403")


def test_keyboard_navigation_reaches_the_main_nav_and_skips_to_content(logged_in_page, demo_fleet):
    page = logged_in_page("viewer")
    page.goto("/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()  # visible when focused

    reached_nav = False
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('nav[aria-label=Main]') !== null"):
            reached_nav = True
            break
    assert reached_nav, "Tab never reached the main navigation"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused nav link shows no focus ring"

    # Enter on the skip link lands in <main>, past the navigation.
    page.goto("/")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # Sorting works from the keyboard too: focus a column header link and press Enter.
    page.get_by_role("link", name=re.compile(r"^Class")).focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"sort=name"))
    expect(page.locator('th[aria-sort="ascending"]')).to_contain_text("Class")


def test_dark_mode_follows_the_system_setting(logged_in_page, demo_fleet):
    page = logged_in_page("operator", color_scheme="dark")
    page.goto("/")
    body_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    text = page.evaluate("getComputedStyle(document.body).color")
    assert _luminance(body_bg) < 0.15 < 0.7 < _luminance(text)
    screenshot(page, "fleet-overview-dark")
    page.goto("/classes/indexing-pipeline/")
    screenshot(page, "class-detail-dark")

    light = logged_in_page("operator", color_scheme="light")
    light.goto("/")
    assert _luminance(light.evaluate("getComputedStyle(document.body).backgroundColor")) > 0.85


def test_the_overview_is_readable_on_a_phone(logged_in_page, demo_fleet):
    page = logged_in_page("viewer", viewport=(390, 844))
    page.goto("/")
    # Neither the page nor the table scrolls sideways: each class is a card (tests/browser/test_phone_layout.py).
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert page.evaluate(
        "document.querySelector('.table-wrap').scrollWidth <= document.querySelector('.table-wrap').clientWidth + 1"
    )
    screenshot(page, "fleet-overview-phone")
    page.goto("/classes/batch-enrichment/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(page, "class-detail-phone")


def test_the_table_body_refreshes_itself_without_a_reload(logged_in_page, demo_fleet):
    from tests.factories import WorkloadClassFactory

    page = logged_in_page("viewer")
    page.clock.install()
    page.goto("/?sort=name")
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#fleet-rows tr")).to_have_count(4)

    WorkloadClassFactory(slug="arrived-later", name="Arrived later", owner_team="new-team")
    with page.expect_response(lambda r: "sort=name" in r.url and r.request.headers.get("hx-request") == "true"):
        page.clock.fast_forward(16_000)
    expect(page.locator("#fleet-rows tr")).to_have_count(5)
    expect(page.locator("#fleet-rows")).to_contain_text("arrived-later")
    assert page.evaluate("window.__notReloaded") is True
    assert page.js_errors == []


def test_the_chart_component_draws_series_threshold_markers_and_data_age(logged_in_page, demo_fleet):
    page = logged_in_page("viewer")
    page.goto("/classes/document-processing/")
    page.wait_for_function("() => !!(window.ControlPlaneCharts && window.uPlot)")
    # Telemetry has not landed yet, so the page's own charts are empty: draw one with the same
    # JSON shape dashboards/charts.py produces, in the same figure markup.
    drawn = page.evaluate(
        """() => {
        const end = Math.floor(Date.now() / 1000), start = end - 6 * 3600;
        const x = [], p50 = [], p95 = [];
        for (let t = start; t <= end; t += 300) {
          x.push(t);
          const gap = t > start + 3 * 3600 && t < start + 3.5 * 3600;
          p50.push(gap ? null : 20 + 10 * Math.sin(t / 2000));
          p95.push(gap ? null : 70 + 40 * Math.sin(t / 1500));
        }
        const figure = document.querySelector('#chart-latency');
        figure.querySelector('.empty-state').outerHTML = '<div class="chart-plot" id="test-plot"></div>';
        const plot = ControlPlaneCharts.render(document.getElementById('test-plot'), {
          title: 'Completion latency', unit: 's', start, end, x,
          series: [{label: 'p50', values: p50}, {label: 'p95', values: p95}],
          threshold: {value: 60, label: 'SLO p95 < 60 s'},
          markers: [{t: start + 3600, label: 'scaled to 6 (ada)'}, {t: start + 4 * 3600, label: 'paused (otto)'}],
          newest_sample_at: new Date((end - 240) * 1000).toISOString(), fetched_at: null,
        });
        return {
          canvas: !!document.querySelector('#test-plot canvas'),
          legend: [...document.querySelectorAll('#test-plot .u-legend .u-label')].map(e => e.textContent),
          age: figure.querySelector('.metric-age').textContent,
          width: plot.width,
          yTicks: plot.axes[1].values(plot, [30, 120]),
        };
    }"""
    )
    assert drawn["canvas"]
    assert "p50" in drawn["legend"] and "p95" in drawn["legend"]
    # Away from the cursor, the legend shows each series' latest value with its unit.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#test-plot .u-series:not(:first-child) .u-value')]"
        ".every(e => / s$/.test(e.textContent))"
    )
    assert re.fullmatch(r"data as of \d\d:\d\d UTC \(4 min ago\)", drawn["age"]), drawn["age"]
    expect(page.locator("#chart-latency .metric-age")).not_to_have_class(re.compile("metric-age-stale"))
    # The y axis carries its unit, one for every tick (issue 19): never "30 s, 2 min".
    assert drawn["yTicks"] == ["30 s", "120 s"]
    page.locator("#chart-latency").scroll_into_view_if_needed()
    page.locator("#chart-latency").screenshot(
        path=str(screenshot(page, "class-detail-with-data").parent / "chart-latency.png")
    )

    # Data 40 minutes old is called out, not just printed.
    stale = page.evaluate(
        """() => {
        const end = Math.floor(Date.now() / 1000);
        ControlPlaneCharts.render(document.getElementById('test-plot'), {
          title: 't', unit: 'count', start: end - 3600, end, x: [end - 2400], series: [{label: 'a', values: [1]}],
          threshold: null, markers: [], newest_sample_at: new Date((end - 2400) * 1000).toISOString(),
        });
        const age = document.querySelector('#chart-latency .metric-age');
        return [age.textContent, age.classList.contains('metric-age-stale')];
    }"""
    )
    assert stale[0].endswith("(40 min ago)") and stale[1] is True

    # Switching the system to dark redraws in the dark palette (the legend swatch follows the line colour).
    swatch = "getComputedStyle(document.querySelector('#test-plot .u-series:nth-child(2) .u-marker')).borderColor"
    light_colour = page.evaluate(swatch)
    page.emulate_media(color_scheme="dark")
    page.wait_for_function(f"() => {swatch} !== {light_colour!r}")

    # It follows its container's width.
    page.set_viewport_size({"width": 480, "height": 900})
    page.wait_for_function(
        f"() => document.querySelector('#test-plot canvas').getBoundingClientRect().width < {drawn['width']}"
    )
    assert page.js_errors == []


def test_a_failed_refresh_says_so_instead_of_showing_old_numbers_silently(logged_in_page, demo_fleet):
    page = logged_in_page("viewer")
    page.clock.install()
    page.goto("/")
    page.route(re.compile(r"/\?"), lambda route: route.fulfill(status=500, body="boom"))
    page.route(re.compile(r"/$"), lambda route: route.fulfill(status=500, body="boom"))
    page.clock.fast_forward(16_000)
    toast = page.locator(".toast-error")
    expect(toast).to_contain_text("Could not refresh live data (server answered 500)")
    expect(page.locator("#fleet-rows tr")).to_have_count(4)  # the table stays, it is not replaced by "boom"
    screenshot(page, "refresh-failed-toast")
    page.clock.fast_forward(16_000)
    expect(toast).to_have_count(1)  # one note, not one per failed poll
    toast.get_by_role("button", name="Dismiss message").click()
    expect(toast).to_have_count(0)


def test_the_incident_banner_shows_on_every_page(logged_in_page, demo_fleet):
    from datetime import timedelta

    from django.utils import timezone

    from workloads.models import IncidentMode

    now = timezone.now()
    IncidentMode.objects.create(
        started_by_label="otto-operator",
        reason="Database failover in europe-west1",
        ticket="INC-4711",
        started_at=now - timedelta(minutes=25),
        expires_at=now + timedelta(hours=2),
    )
    page = logged_in_page("viewer")
    for url in ("/", "/classes/policy-evaluation/"):
        page.goto(url)
        banner = page.get_by_role("region", name="Incident mode is active: deferrable pipelines are paused")
        expect(banner).to_contain_text("otto-operator")
        expect(banner).to_contain_text("Database failover in europe-west1")
        expect(banner).to_contain_text("INC-4711")
    screenshot(page, "incident-banner")
