"""The alerts API: channels (write-only secrets, test sends), routes, incidents with acknowledge,
silences with preview; an audit event for every change. The role checks of every endpoint are
tests/api/test_notifications_permissions.py, on the world built here."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.roles import Role
from tests.callers import ANONYMOUS, clients_of, session_of, token_of, user_with_role
from tests.notifications.helpers import make_slo, open_alert, sync
from tests.notifications.receiver import Reply, start_receiver
from workloads.models import AuditEvent, NotificationChannel, NotificationRoute, Silence, SloIncident
from workloads.services.alert_incidents import incident_acknowledge

IN_FUTURE = (timezone.now() + timedelta(hours=2)).isoformat()


@pytest.fixture
def receiver():
    r = start_receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def build_world(receiver) -> dict:
    """A webhook channel to the receiver, the default route to it, an open paging incident (its
    trigger sent), a silence, and how each kind of caller authenticates (tests/callers.py)."""
    now = timezone.now()
    hook = NotificationChannel.objects.create(
        name="hook", kind="webhook", config={"url": f"{receiver.url}/hook"}, secret="top-secret"
    )
    route = NotificationRoute.objects.create(name="default", is_default=True)
    route.channels.set([hook])
    slo = make_slo()
    open_alert(slo, "page-1h-5m", "page", at=now)
    sync(now)
    incident = SloIncident.objects.get()
    silence = Silence.objects.create(
        owner_team="x", reason="r", created_by_label="x", starts_at=now, expires_at=now + timedelta(hours=1)
    )
    admin = user_with_role("root-admin", Role.ADMIN)
    callers = {"anonymous": ANONYMOUS}
    for name, role in [("viewer", Role.VIEWER), ("operator", Role.OPERATOR), ("admin", Role.ADMIN)]:
        callers[name] = session_of(user_with_role(f"{name}-user", role))
    callers["read_token"] = token_of(admin, "reader", ["read"])
    return {"callers": callers, "hook": hook.pk, "route": route.pk, "incident": incident.pk, "silence": silence.pk}


@pytest.fixture
def world(db, receiver):
    built = build_world(receiver)
    return {**built, "clients": clients_of(built["callers"])}


def test_the_secret_is_write_only_and_audited_as_set(world):
    admin = world["clients"]["admin"]
    response = admin.post(
        "/api/v1/notification-channels/",
        {"name": "pd", "kind": "pagerduty", "secret": "R0UTINGKEY", "config": {}},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert "secret" not in body and body["secret_set"] is True
    listed = admin.get("/api/v1/notification-channels/").content.decode()
    assert "R0UTINGKEY" not in listed and "top-secret" not in listed
    event = AuditEvent.objects.get(action="notification_channel.create")
    assert event.extra == {"secret": "set"} and "R0UTINGKEY" not in str(event.changes)
    # An update without the secret keeps it.
    pk = body["id"]
    assert admin.patch(f"/api/v1/notification-channels/{pk}/", {"name": "pd2"}, format="json").status_code == 200
    assert NotificationChannel.objects.get(pk=pk).secret == "R0UTINGKEY"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "w", "kind": "webhook", "config": {"url": "ftp://x"}, "secret": "s"}, "invalid_url"),
        ({"name": "w", "kind": "webhook", "config": {"url": "https://x.example"}}, "secret_required"),
        ({"name": "s", "kind": "slack", "secret": "not a url"}, "invalid_url"),
        ({"name": "e", "kind": "email", "config": {"to": "nobody"}}, "invalid_recipients"),
        ({"name": "k", "kind": "carrier-pigeon"}, "kind"),
        ({"name": "k", "kind": "webhook", "config": [1, 2]}, "config"),
    ],
)
def test_a_bad_channel_is_a_clear_400(world, payload, field):
    response = world["clients"]["admin"].post("/api/v1/notification-channels/", payload, format="json")
    assert response.status_code == 400 and field in response.content.decode(), response.content
    assert not NotificationChannel.objects.filter(name=payload["name"]).exists()


def test_a_second_default_route_is_refused(world):
    response = world["clients"]["admin"].post(
        "/api/v1/notification-routes/", {"name": "another", "is_default": True, "channels": []}, format="json"
    )
    assert response.status_code == 400 and "already a default route" in response.content.decode()


def test_acknowledge_from_the_api_notifies_and_shows_on_the_incident(world, receiver):
    operator = world["clients"]["operator"]
    response = operator.post(
        f"/api/v1/alert-incidents/{world['incident']}/acknowledge/", {"note": "mine"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "acknowledged" and body["acknowledged_by_label"] == "operator-user"
    assert [n["event"] for n in body["notifications"]] == ["trigger", "acknowledge"]
    assert body["runbook_url"].startswith("docs/runbook.md#")
    assert AuditEvent.objects.filter(action="incident.acknowledge", actor_label="operator-user").exists()
    again = operator.post(f"/api/v1/alert-incidents/{world['incident']}/acknowledge/", {}, format="json")
    assert again.status_code == 409


def test_silence_preview_lists_what_it_would_silence_now(world):
    operator = world["clients"]["operator"]
    incident = SloIncident.objects.get()
    hit = operator.post("/api/v1/silences/preview/", {"workload_class_slug": "billing-export"}, format="json")
    assert hit.json() == {"incidents": [incident.key]}
    miss = operator.post("/api/v1/silences/preview/", {"severity": "ticket"}, format="json")
    assert miss.json() == {"incidents": []}
    bad = operator.post("/api/v1/silences/", {"reason": "x", "expires_at": IN_FUTURE}, format="json")
    assert bad.status_code == 400 and "matcher" in bad.content.decode()


def test_channel_test_answers_with_the_attempt(world, receiver):
    receiver.reply_with(Reply(500, "down"))
    response = world["clients"]["operator"].post(f"/api/v1/notification-channels/{world['hook']}/test/")
    assert response.status_code == 200
    assert response.json()["ok"] is False and response.json()["status_code"] == 500


def test_incidents_list_filters_by_state(world, make_user):
    viewer = world["clients"]["viewer"]
    assert len(viewer.get("/api/v1/alert-incidents/?state=open").json()["results"]) == 1
    assert viewer.get("/api/v1/alert-incidents/?state=resolved").json()["results"] == []
    assert viewer.get("/api/v1/alert-incidents/?state=bogus").status_code == 400
    incident_acknowledge(
        actor=make_user("x-op", Role.OPERATOR), incident=SloIncident.objects.get(), note="", now=timezone.now()
    )
    assert viewer.get("/api/v1/alert-incidents/").json()["results"][0]["state"] == "acknowledged"
