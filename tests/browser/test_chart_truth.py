"""The class charts in Chromium tell the truth (issue 19, item 13): instances as whole counts,
one unit per axis, a young class filling the width, labels that do not overlap, and one
crosshair and one zoom across all of a class's charts."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.dashboards.helpers import BREACHED_SLUG

YOUNG_MINUTES = 30
ALL_DRAWN = "() => window.ControlPlaneCharts && ControlPlaneCharts.count() === 6"


@pytest.fixture
def young_class(demo_fleet):
    """BREACHED_SLUG with only its last 30 minutes of metrics: a queue age climbing from 30 s to
    about 7 min, a pool whose minutes average 0.8 instances for a quarter of an hour and then 1.6,
    and settings changed four times in the last three minutes (markers crowding the right edge)."""
    from django.utils import timezone

    from tests.workloads.telemetry_doubles import FakeMetrics, distribution, installed_metrics
    from workloads.models import AuditEvent
    from workloads.providers.base import MetricKind
    from workloads.services.polling import metrics_poll

    now = timezone.now()
    first = now - timedelta(minutes=YOUNG_MINUTES)

    def minutes_in(end):
        return (end - first).total_seconds() / 60

    def only_breached(fn):
        return lambda slug, end: fn(end) if slug == BREACHED_SLUG and end > first else None

    fake = FakeMetrics()
    fake.set(MetricKind.OLDEST_UNACKED_AGE, only_breached(lambda end: 30 + 13 * minutes_in(end)))
    fake.set(MetricKind.INSTANCE_COUNT, only_breached(lambda end: 0.8 if minutes_in(end) <= YOUNG_MINUTES / 2 else 1.6))
    fake.set(MetricKind.UNDELIVERED_MESSAGES, only_breached(lambda end: 40.0))
    fake.set(MetricKind.COMPLETED, only_breached(lambda end: 20.0))
    fake.set(MetricKind.COMPLETION_LATENCY, only_breached(lambda end: distribution([2.0] * 90 + [6.0] * 10)))
    with installed_metrics(fake):
        metrics_poll(now=now, window_minutes=YOUNG_MINUTES + 5)
    for seconds in (20, 55, 95, 170):
        AuditEvent.objects.create(
            occurred_at=now - timedelta(seconds=seconds),
            actor_label="alice",
            action="workload_class.update",
            workload_class_slug=BREACHED_SLUG,
            target_type="workload_class",
            target_repr=BREACHED_SLUG,
        )
    return now


PLOTS = """() => Array.from(document.querySelectorAll('#class-charts [data-chart]')).map(container => {
  const payload = JSON.parse(document.getElementById(container.dataset.chart).textContent);
  return {container, payload, plot: ControlPlaneCharts.plotFor(container)};
})"""


def _axis(page, key):
    """The y axis of one chart as drawn: its tick values and their labels."""
    return page.evaluate(
        """(key) => {
        const plot = ControlPlaneCharts.plotFor(document.querySelector(`#chart-${key} .chart-plot`));
        const axis = plot.axes[1];
        return {splits: axis._splits, labels: axis._values};
    }""",
        key,
    )


def test_instances_are_counts_each_axis_keeps_one_unit_and_a_young_class_fills_the_width(logged_in_page, young_class):
    page = logged_in_page("viewer")
    page.goto(f"/classes/{BREACHED_SLUG}/")  # the default range (6 h) is longer than the class's data
    page.wait_for_function(ALL_DRAWN)

    instances = page.evaluate(
        """() => JSON.parse(document.getElementById('chart-data-instances').textContent).series[0]"""
    )
    counts = [v for v in instances["values"] if v is not None]
    assert len(counts) >= 10 and all(isinstance(v, int) for v in counts), counts
    # 0.8 means one instance ran for part of the minute, 1.6 that two did: never "0.8" or "1.2".
    assert set(counts) == {1, 2}, counts
    assert "most running at once" in instances["label"]
    legend = page.locator("#chart-instances .u-legend .u-series").nth(1)
    expect(legend).to_contain_text("most running at once, per 2 min")
    expect(legend.locator(".u-value")).to_have_text("2")  # the latest minute averaged 1.6

    # Instances: integer ticks only.
    axis = _axis(page, "instances")
    assert axis["splits"] and all(float(v).is_integer() for v in axis["splits"]), axis
    assert all(label.isdigit() for label in axis["labels"]), axis

    # Queue age runs from 30 s to about 7 min: one unit on every tick, never "100 s, 3.3 min".
    axis = _axis(page, "queue-age")
    units = {label.split(" ")[-1] for label in axis["labels"]}
    assert len(units) == 1 and units <= {"s", "min"}, axis
    assert len(axis["labels"]) >= 3, axis

    # The axis starts where the data does: the first point sits at the left edge, not 5/6 along.
    placement = page.evaluate(
        """() => {
        const plot = ControlPlaneCharts.plotFor(document.querySelector('#chart-queue-age .chart-plot'));
        const first = plot.data[0][plot.data[1].findIndex(v => v != null)];
        const x = plot.valToPos(first, 'x');
        return {fraction: x / plot.bbox.width * devicePixelRatio, span: plot.scales.x.max - plot.scales.x.min};
    }"""
    )
    assert placement["fraction"] < 0.1, placement
    assert placement["span"] < 2 * 3600, placement
    # ... and every chart of the class shares that axis.
    spans = page.evaluate(f"() => ({PLOTS})().map(p => [p.plot.scales.x.min, p.plot.scales.x.max])")
    assert len({tuple(s) for s in spans}) == 1, spans
    screenshot(page, "class-detail-young-class")

    # The overview counts the same way: the latest minute's 1.6 is two instances, not "1.6".
    page.goto("/")
    row = page.locator("#fleet-rows tr").filter(has=page.locator(".slug", has_text=BREACHED_SLUG))
    cell = row.locator('[data-col="instances"]')
    expect(cell).to_contain_text("2 /")
    expect(cell).not_to_contain_text("1.6")
    assert page.js_errors == []


def _intersect(a, b):
    return (
        a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    )


def _overlaps(boxes):
    return [(a["label"], b["label"]) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if _intersect(a, b)]


def _dom_box(locator):
    box = locator.bounding_box()
    return {"x": box["x"], "y": box["y"], "w": box["width"], "h": box["height"], "label": locator.inner_text()}


@pytest.mark.parametrize("viewport", [(1280, 860), (390, 844)], ids=["laptop", "phone"])
def test_chart_labels_and_the_data_as_of_line_never_overlap(logged_in_page, young_class, viewport):
    from workloads.models import Slo, SloKind

    # A threshold above the data puts its label in the top right corner, where the markers of
    # the last few minutes put theirs.
    Slo.objects.filter(workload_class__slug=BREACHED_SLUG, kind=SloKind.QUEUE_AGE).update(threshold_seconds=450)
    page = logged_in_page("viewer", viewport=viewport)
    page.goto(f"/classes/{BREACHED_SLUG}/")
    page.wait_for_function(ALL_DRAWN)

    drawn = page.evaluate(
        """() => {
        const plot = ControlPlaneCharts.plotFor(document.querySelector('#chart-queue-age .chart-plot'));
        return ControlPlaneCharts.labelBoxes(plot);
    }"""
    )
    kinds = [box["kind"] for box in drawn]
    assert kinds.count("threshold") == 1 and kinds.count("marker") >= 1, drawn
    assert _overlaps(drawn) == [], drawn
    for box in drawn:  # inside the plot area, so nothing is cut off
        assert box["x"] >= 0 and box["y"] >= 0, box

    for key in ("queue-age", "latency", "throughput", "instances"):
        head = page.locator(f"#chart-{key} .chart-head")
        age = head.locator(".metric-age")
        expect(age).to_contain_text("data as of")
        # One line: as tall as its own text, however narrow the chart.
        lines = age.evaluate("el => el.getClientRects().length === 1 && el.getBoundingClientRect().height")
        line_height = age.evaluate("el => parseFloat(getComputedStyle(el).fontSize) * 1.6")
        assert lines and lines <= line_height, (key, lines, line_height)
        parts = [_dom_box(head.locator("h3")), _dom_box(age)]
        if head.locator(".chart-threshold").count():
            parts.append(_dom_box(head.locator(".chart-threshold")))
        assert _overlaps(parts) == [], (key, parts)
    screenshot(page, f"class-detail-labels-{viewport[0]}")
    assert page.js_errors == []


def _over(page, key):
    """The plot area of one chart, scrolled into view (the mouse reaches only what is on screen)."""
    area = page.locator(f"#chart-{key} .u-over")
    area.scroll_into_view_if_needed()
    return area.bounding_box()


def _times_under_cursor(page):
    return page.evaluate(
        f"""() => ({PLOTS})().map(p => p.plot.cursor.left >= 0
            ? Math.round(p.plot.posToVal(p.plot.cursor.left, 'x')) : null)"""
    )


def test_one_crosshair_and_one_zoom_across_the_class_charts(logged_in_page, young_class):
    page = logged_in_page("viewer")
    page.goto(f"/classes/{BREACHED_SLUG}/")
    page.wait_for_function(ALL_DRAWN)

    # Hovering one chart puts the crosshair at the same time on all six.
    over = _over(page, "queue-age")
    page.mouse.move(over["x"] + over["width"] * 0.5, over["y"] + over["height"] * 0.5)
    page.wait_for_function(f"() => ({PLOTS})().every(p => p.plot.cursor.left >= 0)")
    times = _times_under_cursor(page)
    assert None not in times and max(times) - min(times) <= 60, times
    legends = page.locator("#class-charts .u-legend .u-series:first-child .u-value").all_inner_texts()
    assert len(legends) == 6 and len(set(legends)) == 1 and legends[0], legends
    visible = page.evaluate(
        f"""() => ({PLOTS})().map(p => getComputedStyle(p.container.querySelector('.u-cursor-x')).display !== 'none'
            && !p.container.querySelector('.u-cursor-x').classList.contains('u-off'))"""
    )
    assert all(visible), visible

    # Dragging across another chart zooms all six to the dragged range; a reset control appears.
    full = page.evaluate(f"() => ({PLOTS})().map(p => [p.plot.scales.x.min, p.plot.scales.x.max])")[0]
    reset = page.get_by_role("button", name="Reset zoom")
    expect(reset).to_be_hidden()
    over = _over(page, "backlog")
    y = over["y"] + over["height"] * 0.5
    page.mouse.move(over["x"] + over["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.4, y, steps=5)
    page.mouse.move(over["x"] + over["width"] * 0.6, y, steps=5)
    page.mouse.up()
    expect(reset).to_be_visible()
    scales = page.evaluate(f"() => ({PLOTS})().map(p => [p.plot.scales.x.min, p.plot.scales.x.max])")
    assert len({tuple(s) for s in scales}) == 1, scales
    lo, hi = scales[0]
    width = full[1] - full[0]
    assert abs((lo - full[0]) / width - 0.25) < 0.03 and abs((hi - full[0]) / width - 0.6) < 0.03, (full, lo, hi)
    # No selection rectangle is left behind once the zoom is applied.
    assert page.evaluate(f"() => ({PLOTS})().every(p => p.plot.select.width === 0)")
    screenshot(page, "class-detail-zoomed")

    # The minute's refresh redraws the charts from new data: the zoom stays.
    page.evaluate(
        """() => { window.redrawn = false;
        document.addEventListener('htmx:afterSettle', () => { window.redrawn = true; }, {once: true});
        htmx.ajax('GET', location.pathname + location.search, {target: '#class-charts', swap: 'morph'}); }"""
    )
    page.wait_for_function(f"() => window.redrawn && ({PLOTS})().length === 6 && ({PLOTS})().every(p => p.plot)")
    refreshed = page.evaluate(f"() => ({PLOTS})().map(p => [p.plot.scales.x.min, p.plot.scales.x.max])")
    assert all(tuple(s) == (lo, hi) for s in refreshed), (lo, hi, refreshed)
    expect(reset).to_be_visible()

    reset.click()
    expect(reset).to_be_hidden()
    scales = page.evaluate(f"() => ({PLOTS})().map(p => [p.plot.scales.x.min, p.plot.scales.x.max])")
    assert all(s[0] == full[0] and s[1] >= full[1] for s in scales), (full, scales)

    # A zoom belongs to its range: zoom again, pick another range, and it starts whole.
    over = _over(page, "backlog")
    y = over["y"] + over["height"] * 0.5
    page.mouse.move(over["x"] + over["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.7, y, steps=8)
    page.mouse.up()
    expect(reset).to_be_visible()
    page.get_by_role("navigation", name="Time range").get_by_role("link", name="1h").click()
    page.wait_for_url("**range=1h")
    page.wait_for_function(
        f"() => ({PLOTS})().length === 6 && ({PLOTS})().every(p => p.plot && p.payload.x[1] - p.payload.x[0] === 60)"
    )
    expect(reset).to_be_hidden()
    whole = page.evaluate(
        f"() => ({PLOTS})().map(p => [p.plot.scales.x.min === p.payload.start, p.plot.scales.x.max === p.payload.end])"
    )
    assert all(all(pair) for pair in whole), whole
    assert page.js_errors == []
