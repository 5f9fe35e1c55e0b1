"""Alerts in Chromium against the live server: an operator acknowledges an incident (its
acknowledgement reaches PagerDuty, a real HTTP receiver here), previews and creates a silence,
and an admin creates a webhook channel and sends it a test. Screenshots land in var/screenshots/."""

import json

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.notifications.receiver import Reply, start_receiver


@pytest.fixture
def receiver():
    r = start_receiver()
    r.default = Reply(202, json.dumps({"status": "success", "message": "Event processed"}))
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def paging_incident(transactional_db, receiver):
    """One SLO paging with two windows, routed to PagerDuty (the receiver), trigger delivered."""
    from django.utils import timezone

    from tests.notifications.helpers import channel, default_route, make_slo, open_alert, sync
    from workloads.models import SloIncident
    from workloads.services.notifications import notifications_deliver_due

    now = timezone.now()
    default_route(channel("pagerduty", receiver, name="pagerduty"))
    slo = make_slo()
    open_alert(slo, "page-1h-5m", "page", at=now)
    open_alert(slo, "page-6h-30m", "page", at=now)
    sync(now)
    notifications_deliver_due(now=now)
    assert [r.json()["event_action"] for r in receiver.wait_for(1)] == ["trigger"]
    return SloIncident.objects.get()


def test_an_operator_acknowledges_an_incident_and_pagerduty_hears_of_it(paging_incident, receiver, logged_in_page):
    from django.utils import timezone

    from workloads.services.notifications import notifications_deliver_due

    page = logged_in_page("operator")
    page.goto("/alerts/")
    cards = page.locator("article.incident-card")
    expect(cards).to_have_count(1)  # two windows of one SLO: one incident
    card = cards.first
    expect(card).to_contain_text("page-1h-5m")
    expect(card).to_contain_text("page-6h-30m")
    expect(card.get_by_role("link", name="Runbook")).to_have_attribute(
        "href", "docs/runbook.md#4-page-success-ratio-or-latency"
    )
    card.get_by_label("Note").fill("rolling back the deploy")
    card.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".toast, [role=status]").first).to_contain_text("acknowledged")
    expect(card).to_contain_text("Acknowledged by")
    expect(card).to_contain_text("rolling back the deploy")
    expect(card.locator(".incident-state")).to_have_text("acknowledged")
    screenshot(page, "alerts-acknowledged")

    notifications_deliver_due(now=timezone.now())
    events = [r.json() for r in receiver.wait_for(2)]
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge"]
    assert events[1]["dedup_key"] == paging_incident.key
    assert not page.js_errors


def test_an_operator_previews_and_creates_a_silence(paging_incident, logged_in_page):
    from workloads.models import Silence

    page = logged_in_page("operator")
    page.goto("/alerts/silences/")
    page.get_by_label("Class (slug)").fill("billing-export")
    page.get_by_label("Reason").fill("planned migration")
    page.get_by_label("Expires in (minutes)").fill("90")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator(".silence-preview")
    expect(preview).to_contain_text("would cover 1 open incident now")
    expect(preview).to_contain_text(paging_incident.key)
    assert not Silence.objects.exists()
    page.get_by_role("button", name="Silence", exact=True).click()
    row = page.locator("tr[data-silence]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("planned migration")
    expect(row).to_contain_text("class billing-export")
    screenshot(page, "alerts-silences")
    row.get_by_role("button", name="End now").click()
    expect(page.locator("tr[data-silence]")).to_have_count(0)
    assert Silence.objects.get().ended_at is not None


def test_an_admin_creates_a_webhook_channel_and_sends_a_test(transactional_db, receiver, logged_in_page):
    receiver.default = Reply(200, "ok")
    page = logged_in_page("admin")
    page.goto("/alerts/channels/")
    page.get_by_label("Name").fill("team webhook")
    page.get_by_label("Kind").select_option("webhook")
    page.get_by_label("Webhook URL").fill(f"{receiver.url}/hook")
    page.get_by_label("Secret").fill("sign-with-this")
    page.get_by_role("button", name="Create channel").click()
    row = page.locator('tr[data-channel="team webhook"]')
    expect(row).to_contain_text("set")
    expect(page.locator("main")).not_to_contain_text("sign-with-this")
    row.get_by_role("button", name="Send a test notification").click()
    expect(page.locator(".toast, [role=status]").first).to_contain_text("Test sent to “team webhook”")
    expect(page.locator('tr[data-channel="team webhook"]')).to_contain_text("ok")
    screenshot(page, "alerts-channels")
    (request,) = receiver.wait_for(1)
    assert request.json()["event"] == "test" and request.headers["x-controlplane-signature"].startswith("v1=")
    assert not page.js_errors


def test_a_viewer_sees_alerts_but_no_buttons(paging_incident, logged_in_page):
    page = logged_in_page("viewer")
    page.goto("/alerts/")
    expect(page.locator("article.incident-card")).to_have_count(1)
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    page.goto("/alerts/channels/")
    expect(page.get_by_role("button", name="Send a test notification")).to_have_count(0)
    expect(page.get_by_role("button", name="Create channel")).to_have_count(0)
