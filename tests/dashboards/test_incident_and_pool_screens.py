"""Incident mode, per-class pauses, the scaling controller's state, seek and snapshots, the
overview's actual / target, and the migration comparison, as the screens show and change them."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.dashboards.conftest import HX
from tests.dashboards.oncall_fixtures import DEFERRABLE_SLUG, DL_SLUG
from tests.workloads.pools import run_pending, someone_else_sets
from workloads.models import Action, ClassTelemetry, IncidentMode, PoolControl, PoolHold, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.specs import pool_spec
from workloads.services.incidents import incident_mode_enter
from workloads.services.scaling import scaling_controller_tick


@pytest.fixture
def demo_fleet(demo_fleet_of_the_module):
    """Seeded once for the module, whose every test uses it (tests/dashboards/conftest.py). `oncall`
    stays per test: a test here needs the fleet without the pools `oncall` sets up."""


ENTER = {"reason": "primary database failover", "ticket": "INC-9", "expires_in_minutes": "240"}


def _count(wc) -> int:
    return get_providers().pools.get(pool_spec(wc)).instance_count


def test_the_enter_preview_shows_the_pools_their_counts_and_warnings(ui_client, operator, oncall):
    WorkloadClass.objects.filter(slug=DEFERRABLE_SLUG).update(message_retention_seconds=3600)
    html = ui_client(operator).post("/incidents/enter/", ENTER, headers=HX).content.decode()
    assert html.lstrip().startswith('<section id="enter-panel"')
    row = re.search(rf'<tr data-class="{DEFERRABLE_SLUG}">.*?</tr>', html, re.S).group(0)
    assert '<td class="num" data-col="now"><strong>3</strong></td>' in row and "3 → 0" in row
    assert "the subscription keeps messages for 1 h but the pause may last 4 h" in row
    assert "pauses <strong>1</strong> deferrable pool (3 instances running now)" in html
    assert 'name="step" value="confirm"' in html and 'value="primary database failover"' in html
    assert not IncidentMode.objects.exists() and _count(oncall["deferrable"]) == 3  # only a preview


def test_a_pool_that_cannot_be_read_is_named_in_the_preview(ui_client, operator, demo_fleet):
    from workloads.providers.local.models import LocalWorkerPool

    LocalWorkerPool.objects.all().delete()  # the pools were never created
    html = ui_client(operator).post("/incidents/enter/", ENTER, headers=HX).content.decode()
    assert "the pool could not be read" in html and "does not exist" in html
    assert '<span class="count-bad">unknown</span>' in html


def test_a_reason_is_required(ui_client, operator, oncall):
    html = ui_client(operator).post("/incidents/enter/", {"reason": " ", "expires_in_minutes": "60"}, headers=HX)
    assert "This field is required." in html.content.decode() or "Say why." in html.content.decode()
    assert not IncidentMode.objects.exists()


def test_entering_pauses_and_the_state_shows_it_until_exit_restores(ui_client, operator, viewer, oncall):
    client = ui_client(operator)
    response = client.post("/incidents/enter/", {**ENTER, "step": "confirm"}, headers=HX)
    assert response["HX-Redirect"] == "/incidents/"  # a whole-page move: the banner appears
    incident = IncidentMode.objects.get()
    assert incident.reason == "primary database failover" and incident.ticket == "INC-9"
    assert incident.expires_at - incident.started_at == timedelta(hours=4)

    page = ui_client(viewer).get("/incidents/").content.decode()
    assert 'class="incident-banner"' in page and "“primary database failover”" in page
    state = ui_client(viewer).get("/incidents/", headers=HX).content.decode()
    assert 'hx-trigger="every 2s"' in state and "pausing" in state  # polls while the enter action runs
    assert "Exit incident mode" not in state  # a viewer gets no button

    run_pending()
    state = client.get("/incidents/", headers={**HX, "HX-Target": "incident-state"}).content.decode()
    assert 'hx-trigger="every 2s"' not in state  # the action ended: the polling stops
    assert "Incident mode is on: 1 pool paused." in state  # the toast "being paused" is replaced
    row = re.search(rf'<tr class="hold-active" data-class="{DEFERRABLE_SLUG}">.*?</tr>', state, re.S).group(0)
    assert '<td class="num" data-col="had">3</td>' in row and "<strong>0</strong>" in row
    assert _count(oncall["deferrable"]) == 0 and "Exit incident mode" in state

    assert client.post("/incidents/exit/", {"reason": "failover done"}, headers=HX)["HX-Redirect"] == "/incidents/"
    page = client.get("/incidents/").content.decode()
    assert 'class="incident-banner"' not in page and "Restoring the pools of incident" in page
    history = client.get("/incidents/", headers={**HX, "HX-Target": "incident-state"}).content.decode()
    assert "Restoring the pools" in history and 'id="incident-history"' not in history  # still moving
    run_pending()
    assert _count(oncall["deferrable"]) == 3
    # The last poll brings the history and the toasts along: neither still says "restoring".
    last = client.get("/incidents/", headers={**HX, "HX-Target": "incident-state"}).content.decode()
    oob_history = re.search(r'<section id="incident-history"[^>]*hx-swap-oob="true".*?</section>', last, re.S).group(0)
    assert "restored to <strong>3</strong>" in oob_history and "restoring" not in oob_history
    toasts = re.search(r'<div id="toasts"[^>]*hx-swap-oob="true">.*?</div>\s*</div>', last, re.S).group(0)
    assert f"Incident #{incident.pk} ended: 1 pool restored." in toasts and "being restored" not in toasts
    page = client.get("/incidents/").content.decode()
    assert "Incident mode is not active" in page
    assert re.search(r"batch-enrichment</code>: 3 → 0 → restored to <strong>3</strong> \(the count it had\)", page)


def test_extend_moves_the_expiry(ui_client, operator, oncall):
    incident = incident_mode_enter(actor=operator, reason="x").incident
    response = ui_client(operator).post("/incidents/extend/", {"expires_in_minutes": "1440"})
    assert response.status_code == 302
    incident.refresh_from_db()
    assert abs((incident.expires_at - timezone.now()) - timedelta(days=1)) < timedelta(minutes=1)


def test_exit_without_an_incident_says_so(ui_client, operator, oncall):
    client = ui_client(operator)
    client.post("/incidents/exit/")
    assert "Incident mode is not active." in client.get("/incidents/").content.decode()


def test_history_costs_the_same_queries_whatever_its_length(ui_client, viewer, operator, oncall):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from workloads.services.incidents import incident_mode_exit

    client = ui_client(viewer)

    def incident():
        incident_mode_enter(actor=operator, reason="x")
        run_pending()
        incident_mode_exit(actor=operator)
        run_pending()

    incident()
    client.get("/incidents/")
    with CaptureQueriesContext(connection) as one:
        client.get("/incidents/")
    for _ in range(4):
        incident()
    with CaptureQueriesContext(connection) as five:
        html = client.get("/incidents/").content.decode()
    assert html.count("restored to <strong>3</strong>") == 5
    assert len(five.captured_queries) == len(one.captured_queries)


def test_pause_resume_and_extend_one_class(ui_client, operator, oncall):
    wc = oncall["deferrable"]
    client = ui_client(operator)
    url = f"/classes/{DEFERRABLE_SLUG}"
    missing = client.post(f"{url}/pause/", {"expires_in_minutes": "60"}, headers=HX).content.decode()
    assert missing.lstrip().startswith('<section id="pool-panel"') and "This field is required." in missing
    review = client.post(f"{url}/pause/", {"reason": "deploy", "expires_in_minutes": "60"}, headers=HX).content.decode()
    assert "Pause batch-enrichment for 60 min?" in review and "Pause batch-enrichment: 0 instances" in review
    assert not PoolHold.objects.exists()  # asked, not done
    pause = {"reason": "deploy", "expires_in_minutes": "60", "step": "confirm"}
    html = client.post(f"{url}/pause/", pause, headers=HX).content.decode()
    assert f'hx-get="/classes/{DEFERRABLE_SLUG}/pool/" hx-trigger="every 2s"' in html  # polls while it pauses
    assert "Pausing batch-enrichment" in html  # the toast
    run_pending()
    panel = client.get(f"{url}/pool/", headers=HX).content.decode()
    assert "paused" in panel and "had 3 instances" in panel and "every 2s" not in panel
    assert _count(wc) == 0
    client.post(f"{url}/pause/extend/", {"expires_in_minutes": "1440"}, headers=HX)
    hold = PoolHold.objects.get(workload_class=wc)
    assert hold.expires_at - timezone.now() > timedelta(hours=23)
    client.post(f"{url}/resume/", headers=HX)
    run_pending()
    assert _count(wc) == 3
    assert client.get(f"{url}/pool/").status_code == 302  # the panel alone is for htmx


def test_a_pause_asks_first_with_the_tier_the_backlog_and_the_retention_risk(ui_client, operator, oncall):
    wc = oncall["deferrable"]
    WorkloadClass.objects.filter(pk=wc.pk).update(tier="critical", message_retention_seconds=2 * 3600)
    ClassTelemetry.objects.update_or_create(
        workload_class=wc, defaults={"fetched_at": timezone.now(), "backlog": 1234.0, "oldest_unacked_age_seconds": 90}
    )
    client = ui_client(operator)
    asked = {"reason": "bad deploy", "expires_in_minutes": "240"}
    html = client.post(f"/classes/{DEFERRABLE_SLUG}/pause/", asked, headers=HX).content.decode()
    statement = re.search(r'data-testid="pause-statement">(.*?)</p>', html, re.S).group(1)
    assert "<strong>Critical</strong> tier: not a class incident mode would pause" in statement
    assert "<strong>1234</strong> messages waiting, the oldest for 90 s" in statement
    assert "keeps messages for 2 h" in statement
    assert "the subscription keeps messages for 2 h but the pause may last 4 h" in html
    assert not PoolHold.objects.exists()
    # Without JavaScript the same question is a page, and nothing is paused until it is answered.
    page = client.post(f"/classes/{DEFERRABLE_SLUG}/pause/", asked)
    assert page.status_code == 200 and "Pause batch-enrichment: 0 instances" in page.content.decode()
    assert not PoolHold.objects.exists()
    done = client.post(f"/classes/{DEFERRABLE_SLUG}/pause/", {**asked, "step": "confirm"})
    assert done.status_code == 302 and PoolHold.objects.filter(workload_class=wc).exists()


def test_the_pause_options_warn_when_longer_than_the_retention(ui_client, operator, oncall):
    WorkloadClass.objects.filter(slug=DEFERRABLE_SLUG).update(message_retention_seconds=2 * 3600)
    html = ui_client(operator).get(f"/classes/{DEFERRABLE_SLUG}/").content.decode()
    assert '<option value="60">1 hour</option>' in html
    assert "4 hours (longer than the retention)" in html


def test_drift_shows_and_an_operator_takes_over(ui_client, viewer, operator, oncall):
    wc = oncall["deferrable"]
    scaling_controller_tick(now=timezone.now())
    someone_else_sets(wc, 5)
    scaling_controller_tick(now=timezone.now())
    viewer_html = ui_client(viewer).get(f"/classes/{DEFERRABLE_SLUG}/").content.decode()
    assert "expected 3 instances, found 5 (last changed by ops@example.com)" in viewer_html
    assert "Take over" not in viewer_html
    overview = ui_client(viewer).get("/").content.decode()
    row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{DEFERRABLE_SLUG}(?:(?!</tr>).)*</tr>", overview, re.S).group(0)
    assert "drifted" in row and "expected 3 instances, found 5" in row
    html = ui_client(operator).post(f"/classes/{DEFERRABLE_SLUG}/scaling/take-over/", headers=HX).content.decode()
    assert "owns batch-enrichment’s pool again, starting from 5 instances" in html
    control = PoolControl.objects.get(workload_class=wc)
    assert control.drifted_since is None and control.last_set_count == 5 and control.takeover_by == operator


def test_the_controller_can_be_turned_off_and_on(ui_client, operator, oncall):
    client = ui_client(operator)
    url = f"/classes/{DEFERRABLE_SLUG}/scaling/controller/"
    html = client.post(url, {"controller_enabled": "0"}, headers=HX).content.decode()
    assert "Turn controller on" in html
    assert not PoolControl.objects.get(workload_class=oncall["deferrable"]).controller_enabled
    client.post(url, {"controller_enabled": "1"}, headers=HX)
    assert PoolControl.objects.get(workload_class=oncall["deferrable"]).controller_enabled


def test_the_overview_shows_actual_target_and_paused(ui_client, viewer, operator, oncall):
    scaling_controller_tick(now=timezone.now())
    incident_mode_enter(actor=operator, reason="x")
    run_pending()
    html = ui_client(viewer).get("/").content.decode()
    row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{DEFERRABLE_SLUG}(?:(?!</tr>).)*</tr>", html, re.S).group(0)
    cell = re.search(r'data-col="instances"[^>]*>(.*?)</td>', row, re.S).group(1)
    assert '<span class="of">/ 0</span>' in cell and "paused" in cell
    other = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{DL_SLUG}(?:(?!</tr>).)*</tr>", html, re.S).group(0)
    assert '<span class="of">/ 2</span>' in other and "paused" not in other


def test_seek_shows_the_effect_and_needs_the_box(ui_client, operator, oncall):
    client = ui_client(operator)
    url = f"/classes/{DEFERRABLE_SLUG}/seek/"
    first = client.post(url, {"to_time": "2026-01-01T10:00", "reason": "bad deploy"}, headers=HX).content.decode()
    assert first.lstrip().startswith('<section id="subscription-panel"')
    assert "This affects the whole subscription, not only dead letters." in first
    assert 'name="confirm"' in first and not Action.objects.filter(kind="seek").exists()
    reviewed = re.search(r'name="reviewed" value="([^"]*)"', first).group(1)
    # Ticking the box for another time than the one shown asks again.
    other = {"to_time": "2026-01-02T10:00", "confirm": "on", "reviewed": reviewed}
    assert "to 2026-01-02 10:00:00 UTC" in client.post(url, other, headers=HX).content.decode()
    assert not Action.objects.filter(kind="seek").exists()
    # Months back, past the dedup window: a second box, for the completed work that runs again.
    assert 'name="accept_rerun"' in first
    asked = client.post(url, {"to_time": "2026-01-01T10:00", "confirm": "on", "reviewed": reviewed}, headers=HX)
    assert "that deduplication protects" in asked.content.decode()
    assert not Action.objects.filter(kind="seek").exists()
    ticked = {"to_time": "2026-01-01T10:00", "confirm": "on", "accept_rerun": "on", "reviewed": reviewed}
    done = client.post(url, ticked, headers=HX)
    action = Action.objects.get(kind="seek")
    assert action.parameters["to_time"] == "2026-01-01T10:00:00+00:00"
    assert 'id="action-progress"' in done.content.decode()
    neither = client.post(url, {}, headers=HX).content.decode()
    assert "Give either a time or a snapshot to seek to." in neither


def test_a_snapshot_is_requested(ui_client, operator, oncall):
    client = ui_client(operator)
    url = f"/classes/{DEFERRABLE_SLUG}/snapshot/"
    bad = client.post(url, {"name": "goog-x"}, headers=HX).content.decode()
    assert "is not a valid snapshot name" in bad
    client.post(url, {"name": "before-deploy-42"}, headers=HX)
    assert Action.objects.get(kind="snapshot").parameters["name"] == "before-deploy-42"
    plain = client.post(url, {"name": "before-deploy-43"})
    assert plain.status_code == 302 and plain["Location"].startswith("/actions/")


def test_the_class_page_lists_its_snapshots_and_a_seek_to_another_is_refused(ui_client, operator, oncall):
    from workloads.providers.specs import queue_spec

    wc = WorkloadClass.objects.get(slug=DEFERRABLE_SLUG)
    get_providers().queue.ensure_resources(queue_spec(wc))
    client = ui_client(operator)
    assert "None: a seek can go back to a time only" in client.get(f"/classes/{DEFERRABLE_SLUG}/").content.decode()
    get_providers().queue.create_snapshot(queue_spec(wc), "before-deploy-7")
    html = client.get(f"/classes/{DEFERRABLE_SLUG}/").content.decode()
    assert "<code" in html and ">before-deploy-7</code>" in html and '<option value="before-deploy-7">' in html
    refused = client.post(f"/classes/{DEFERRABLE_SLUG}/seek/", {"snapshot": "before-deploy-8"}, headers=HX)
    text = refused.content.decode()
    assert "No snapshot &#x27;before-deploy-8&#x27;" in text and "before-deploy-7" in text
    assert 'name="confirm"' not in text and not Action.objects.filter(kind="seek").exists()


def test_the_comparison_shows_numbers_with_their_counts_and_notes(ui_client, viewer, polled_fleet):
    from tests.dashboards.helpers import HEALTHY_SLUG, STALE_SLUG

    today = timezone.now().date()
    html = ui_client(viewer).get("/compare/").content.decode()  # the default: last 7 days against the 7 before
    assert f'value="{(today - timedelta(days=6)).isoformat()}"' in html
    url = (
        f"/compare/?a_class={HEALTHY_SLUG}&a_start={today}&a_end={today}&b_class={STALE_SLUG}"
        f"&b_start={today}&b_end={today}"
    )
    html = ui_client(viewer).get(url).content.decode()
    failure = re.search(r'<tr data-row="failure-rate">.*?</tr>', html, re.S).group(0)
    assert "0.00 %" in failure and "failed of " in failure
    assert re.search(r"\d+ completions", html) and "instance-h" in html
    assert "outcomes (fewer than 100): its rates are thin evidence" in html or "B against A" in html
    bad = ui_client(viewer).get(f"/compare/?a_class={HEALTHY_SLUG}&a_start={today}&a_end=2020-01-01").content
    assert "The end must not be before the start." in bad.decode()
