"""The alert screens: incidents grouped per SLO with acknowledge, silences with a preview, channels
with "send a test", routes, the demo receiver, the failing-channel banner, and the class page's
guarded burn and runbook link."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.roles import Role
from tests.notifications.helpers import make_slo, open_alert, sync
from tests.notifications.receiver import Reply, start_receiver
from workloads.models import (
    AuditEvent,
    NotificationChannel,
    NotificationRoute,
    Silence,
    SloIncident,
    SloStatus,
)
from workloads.services.notifications import notifications_deliver_due


@pytest.fixture
def receiver():
    r = start_receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def paging(db):
    """One SLO with two alert windows open together, routed to a demo channel, delivered."""
    now = timezone.now()
    demo = NotificationChannel.objects.create(name="demo receiver", kind="demo")
    route = NotificationRoute.objects.create(name="default", is_default=True)
    route.channels.set([demo])
    slo = make_slo()
    open_alert(slo, "page-1h-5m", "page", at=now)
    open_alert(slo, "page-6h-30m", "page", at=now)
    sync(now)
    notifications_deliver_due(now=now)
    return SloIncident.objects.get()


def test_the_alerts_screen_groups_the_windows_of_one_slo_into_one_incident(paging, ui_client, make_user):
    page = ui_client(make_user("vic", Role.VIEWER)).get("/alerts/").content.decode()
    assert page.count('data-incident="') == 1
    assert paging.key in page and "page-1h-5m" in page and "page-6h-30m" in page
    assert "docs/runbook.md#4-page-success-ratio-or-latency" in page
    assert "Acknowledge</button>" not in page  # viewers read only


def test_an_operator_acknowledges_from_the_screen(paging, ui_client, make_user):
    viewer = ui_client(make_user("vic", Role.VIEWER))
    assert viewer.post(f"/alerts/{paging.pk}/acknowledge/", {"note": "x"}).status_code == 403
    operator = ui_client(make_user("opal", Role.OPERATOR))
    page = operator.get("/alerts/").content.decode()
    assert "Acknowledge</button>" in page
    response = operator.post(f"/alerts/{paging.pk}/acknowledge/", {"note": "rolling back"}, follow=True)
    text = response.content.decode()
    assert "Acknowledged by <strong>opal</strong>" in text and "rolling back" in text
    assert AuditEvent.objects.filter(action="incident.acknowledge", actor_label="opal").exists()


def test_a_silence_is_previewed_then_created(paging, ui_client, make_user):
    operator = ui_client(make_user("opal", Role.OPERATOR))
    form = {"workload_class_slug": "billing-export", "reason": "deploy", "expires_in_minutes": "60"}
    preview = operator.post("/alerts/silences/", {**form, "preview": "1"}).content.decode()
    assert "would cover 1 open incident now" in preview and paging.key in preview
    assert not Silence.objects.exists()
    operator.post("/alerts/silences/", form)
    silence = Silence.objects.get()
    assert silence.workload_class_slug == "billing-export" and silence.created_by_label == "opal"
    missing_reason = operator.post("/alerts/silences/", {**form, "reason": ""}).content.decode()
    assert "Say why you silence these alerts." in missing_reason
    assert Silence.objects.count() == 1


def test_channels_are_created_by_admins_and_tested_by_operators(db, receiver, ui_client, make_user):
    admin = ui_client(make_user("ada", Role.ADMIN))
    response = admin.post(
        "/alerts/channels/",
        {"name": "team hook", "kind": "webhook", "url": f"{receiver.url}/hook", "secret": "hush"},
    )
    assert response.status_code == 302
    channel = NotificationChannel.objects.get(name="team hook")
    page = admin.get("/alerts/channels/").content.decode()
    assert "hush" not in page and ">set<" in page
    operator = ui_client(make_user("opal", Role.OPERATOR))
    assert operator.post("/alerts/channels/", {"name": "x", "kind": "demo"}).status_code == 403
    done = operator.post(f"/alerts/channels/{channel.pk}/test/", follow=True).content.decode()
    assert "Test sent to “team hook”" in done
    assert receiver.wait_for(1)[0].path == "/hook"


def test_a_channel_failing_for_15_minutes_raises_a_banner(db, receiver, ui_client, make_user):
    receiver.default = Reply(500, "down")
    channel = NotificationChannel.objects.create(
        name="team hook", kind="webhook", config={"url": f"{receiver.url}/hook"}, secret="s"
    )
    viewer = ui_client(make_user("vic", Role.VIEWER))
    NotificationChannel.objects.filter(pk=channel.pk).update(failing_since=timezone.now() - timedelta(minutes=14))
    assert "Notifications are failing" not in viewer.get("/").content.decode()
    NotificationChannel.objects.filter(pk=channel.pk).update(failing_since=timezone.now() - timedelta(minutes=16))
    assert "Notifications are failing" in viewer.get("/").content.decode()


def test_routes_screen_lists_and_creates(db, ui_client, make_user):
    NotificationChannel.objects.create(name="demo receiver", kind="demo")
    admin = ui_client(make_user("ada", Role.ADMIN))
    response = admin.post(
        "/alerts/routes/",
        {
            "name": "payments pages",
            "order": "1",
            "owner_team": "payments",
            "severity": "page",
            "channels": [NotificationChannel.objects.get().pk],
            "business_hours_timezone": "UTC",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    page = admin.get("/alerts/routes/").content.decode()
    assert "payments pages" in page and "team payments" in page
    bad = admin.post("/alerts/routes/", {"name": "tz", "order": "1", "business_hours_timezone": "Mars/Olympus"})
    assert "Unknown time zone" in bad.content.decode()


def test_the_demo_receiver_lists_what_it_received(paging, ui_client, make_user):
    page = ui_client(make_user("vic", Role.VIEWER)).get("/alerts/demo-receiver/").content.decode()
    assert page.count('class="card demo-received"') == 1
    assert "[Opened] PAGE: billing-export success ratio" in page and paging.key in page


def test_the_slo_card_says_when_the_guard_holds_an_alert_back(db, ui_client, make_user):
    slo = make_slo()
    now = timezone.now()
    SloStatus.objects.create(
        slo=slo,
        evaluated_at=now,
        window_start=now - timedelta(days=28),
        guarded=[
            {
                "rule": "page-1h-5m",
                "severity": "page",
                "events": 19.0,
                "min_traffic": 20,
                "window": "1h",
                "burn_rate": 60.0,
            }
        ],
    )
    page = ui_client(make_user("vic", Role.VIEWER)).get("/classes/billing-export/").content.decode()
    assert "guarded: 19 of 20 events" in page
    assert "docs/runbook.md#4-page-success-ratio-or-latency" in page


def test_the_overview_counts_one_incident_per_slo(paging, ui_client, make_user):
    import re

    page = ui_client(make_user("vic", Role.VIEWER)).get("/").content.decode()
    cell = re.search(r'data-col="alerts"[^>]*>(.*?)</td>', page, re.S).group(1)
    # Two windows of one SLO burn: one incident, paging.
    assert re.sub(r"<[^>]+>", "", cell).split() == ["1", "1", "paging"]
