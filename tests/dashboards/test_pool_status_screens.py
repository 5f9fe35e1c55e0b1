"""The pool's own status on the screens: paused, held (a manual override) and unhealthy pools show
as such on the overview, sorted above OK with the time left or the evidence, instead of a green
OK; the class page's pool panel says what holds the pool and how healthy its workers are, and
holds it at a count."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.dashboards.conftest import HX
from tests.dashboards.oncall_fixtures import DEFERRABLE_SLUG, DL_SLUG
from tests.workloads.pools import fresh_backlog, run_pending
from workloads.domain.health import NO_HANDLER_EXIT_CODE
from workloads.models import PoolHold
from workloads.providers import get_providers
from workloads.providers.local.models import LocalWorkerPool
from workloads.providers.specs import pool_spec
from workloads.services.pauses import pool_pause
from workloads.services.scaling import scaling_controller_tick


@pytest.fixture
def demo_fleet(demo_fleet_of_the_module):
    """Seeded once for the module, whose every test uses it (tests/dashboards/conftest.py)."""


@pytest.fixture
def oncall(oncall_of_the_module):
    """Built once for the module, whose every test uses it (tests/dashboards/conftest.py)."""
    return oncall_of_the_module


def _row(html: str, slug: str) -> str:
    return re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{slug}(?:(?!</tr>).)*</tr>", html, re.S).group(0)


def _status(row: str) -> str:
    return re.search(r'<span class="status status-([a-z-]+)"', row).group(1)


def test_a_paused_pool_is_paused_not_ok_sorted_above_ok_with_the_time_left(ui_client, viewer, operator, oncall):
    pool_pause(workload_class=oncall["deferrable"], actor=operator, reason="bad deploy", expires_in=timedelta(hours=2))
    run_pending()
    fresh_backlog(oncall["class"], backlog=0, queue_age=1, now=timezone.now())  # fresh data: OK
    html = ui_client(viewer).get("/?sort=status").content.decode()
    row = _row(html, DEFERRABLE_SLUG)
    assert _status(row) == "paused" and "status-row-paused" in row
    assert re.search(r"Held at 0 by the pause \(otto-operator\), 1 h 59 min left: bad deploy", row)
    slugs = re.findall(r'<span class="slug">([^<]+)</span>', html)
    statuses = [_status(_row(html, slug)) for slug in slugs]
    assert "ok" in statuses and statuses.index("paused") < statuses.index("ok"), statuses

    panel = ui_client(viewer).get(f"/classes/{DEFERRABLE_SLUG}/").content.decode()
    held = re.search(r'data-testid="controller-held">([^<]*)<', panel).group(1)
    assert held.startswith("Held at 0 by the pause (otto-operator)")


def test_an_operator_holds_the_pool_at_a_count_from_the_class_page(ui_client, viewer, operator, oncall):
    client = ui_client(operator)
    url = f"/classes/{DEFERRABLE_SLUG}/override/"
    body = {"instances": "5", "reason": "warm-up", "expires_in_minutes": "60"}
    assert ui_client(viewer).post(url, body, headers=HX).status_code == 403
    refused = client.post(url, {"instances": "99", "reason": "warm-up", "expires_in_minutes": "60"}, headers=HX)
    assert refused.status_code == 200 and "less than or equal to" in refused.content.decode()
    assert not PoolHold.objects.exists()
    html = client.post(url, {"instances": "5", "reason": "warm-up", "expires_in_minutes": "60"}, headers=HX)
    assert "Holding batch-enrichment at 5 instances." in html.content.decode()
    run_pending()
    assert get_providers().pools.get(pool_spec(oncall["deferrable"])).instance_count == 5
    panel = client.get(f"/classes/{DEFERRABLE_SLUG}/pool/", headers=HX).content.decode()
    assert "held at 5" in panel
    overview = ui_client(viewer).get("/").content.decode()
    row = _row(overview, DEFERRABLE_SLUG)
    assert _status(row) == "held" and "Held at 5 by the override (otto-operator)" in row


def test_an_unhealthy_pool_is_unhealthy_first_with_its_evidence(ui_client, viewer, oncall, settings):
    settings.WORKER_REPORT_INTERVAL_SECONDS = 10
    settings.TELEMETRY_POLL_INTERVAL_SECONDS = 10
    settings.TELEMETRY_POLL_CURRENT_MINUTE = True
    wc = oncall["class"]
    t0 = timezone.now()
    fresh_backlog(wc, backlog=300, queue_age=40, now=t0)
    scaling_controller_tick(now=t0)
    run_pending()
    t1 = t0 + timedelta(seconds=25)
    LocalWorkerPool.objects.filter(name=wc.worker_pool).update(
        exits_in_row=4, last_exit_at=t1, last_exit_code=NO_HANDLER_EXIT_CODE
    )
    fresh_backlog(wc, backlog=300, queue_age=65, now=t1)
    scaling_controller_tick(now=t1)

    html = ui_client(viewer).get("/?sort=status").content.decode()
    row = _row(html, DL_SLUG)
    assert _status(row) == "unhealthy"
    assert "Worker pool unhealthy: no handler registered: 4 worker exits in a row" in row
    first_slug = re.search(r'<span class="slug">([^<]+)</span>', html).group(1)
    assert first_slug == DL_SLUG

    panel = ui_client(viewer).get(f"/classes/{DL_SLUG}/").content.decode()
    health = re.search(r'data-testid="pool-health">(.*?)</dd>', panel, re.S).group(1)
    assert "unhealthy: no handler" in health and "(exit code 78)" in health
    assert "The controller adds no instances while it lasts" in health
