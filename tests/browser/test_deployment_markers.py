"""Deployment markers in Chromium, from both sources: the pool's revision changing (runfleet's start,
read by the scaling controller) and an operator's form on the class page (the API's path too).
Each is a solid deploy-coloured line on the charts and a line in the marker list."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.dashboards.helpers import BREACHED_SLUG, feed_demo_telemetry


@pytest.fixture
def revision_deployed(demo_fleet):
    """The demo fleet with telemetry, and one revision change seen by the controller."""
    from datetime import timedelta

    from django.utils import timezone

    from workloads.models import WorkloadClass
    from workloads.providers import get_providers
    from workloads.providers.local.pools import local_pools_new_revision
    from workloads.providers.specs import pool_spec
    from workloads.services.scaling import scaling_controller_tick

    now = timezone.now()
    feed_demo_telemetry(now)
    get_providers().pools.ensure(pool_spec(WorkloadClass.objects.get(slug=BREACHED_SLUG)), initial_instances=1)
    local_pools_new_revision(now=now - timedelta(minutes=1))
    scaling_controller_tick(now=now)  # learns the revision runfleet gave the pools
    revision = local_pools_new_revision(now=now)  # runfleet restarted: new code
    scaling_controller_tick(now=now)
    return revision


def test_deployments_from_the_pool_revision_and_the_class_page_mark_the_charts(logged_in_page, revision_deployed):
    page = logged_in_page("operator")
    page.goto(f"/classes/{BREACHED_SLUG}/?range=6h")
    page.wait_for_function("() => window.ControlPlaneCharts && ControlPlaneCharts.count() === 6")

    form = page.locator("form.deployment-form")
    form.get_by_label("Version").fill("v9.3.0")
    form.get_by_label("Commit").fill("0123abcd")
    form.get_by_role("button", name="Record a deployment").click()
    expect(page.locator(".messages, [role=status], .toast").first).to_contain_text("Deployment v9.3.0 recorded")
    page.wait_for_function("() => window.ControlPlaneCharts && ControlPlaneCharts.count() === 6")

    markers = page.locator(".chart-markers li.marker-deploy")
    expect(markers.filter(has_text=revision_deployed)).to_have_count(1)
    expect(markers.filter(has_text="deploy v9.3.0")).to_have_count(1)
    deployments = page.locator("ol.deployments")
    expect(deployments).to_contain_text("v9.3.0")
    expect(deployments).to_contain_text(revision_deployed)
    expect(deployments).to_contain_text("pool revision change")

    # Both are drawn: deploy-coloured pixels down the plot at each marker's time.
    drawn = page.evaluate(
        """() => {
        const container = document.querySelector('#chart-queue-age .chart-plot');
        const plot = ControlPlaneCharts.plotFor(container);
        const payload = JSON.parse(document.getElementById('chart-data-queue-age').textContent);
        const ctx = plot.ctx;
        return payload.markers.filter(m => m.kind === 'deploy').map(m => {
          const x = Math.round(plot.valToPos(m.t, 'x', true));
          let orange = 0;
          for (let y = plot.bbox.top + 40; y < plot.bbox.top + plot.bbox.height - 2; y += 3) {
            for (const dx of [-1, 0, 1]) {
              const [r, g, b] = ctx.getImageData(x + dx, y, 1, 1).data;
              if (r > 150 && g > 40 && g < 130 && b < 60) { orange++; break; }
            }
          }
          return {label: m.label, orange};
        });
    }"""
    )
    assert len(drawn) == 2, drawn
    assert all(marker["orange"] > 10 for marker in drawn), drawn
    screenshot(page, "class-detail-deployments")
    assert page.js_errors == []
