"""The alerts API: channels (write-only secrets, test sends), routes, incidents with acknowledge,
silences with preview; role checks for every endpoint and an audit event for every change."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.roles import Role
from tests.notifications.helpers import make_slo, open_alert, sync
from tests.notifications.receiver import Reply, start_receiver
from workloads.models import AuditEvent, NotificationChannel, NotificationRoute, Silence, SloIncident
from workloads.services.alert_incidents import incident_acknowledge

CALLERS = ["anonymous", "viewer", "operator", "admin", "read_token"]


@pytest.fixture
def receiver():
    r = start_receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def world(db, make_user, receiver):
    from workloads.services.tokens import api_token_issue

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
    admin = make_user("root-admin", Role.ADMIN)
    clients = {"anonymous": APIClient()}
    for name, role in [("viewer", Role.VIEWER), ("operator", Role.OPERATOR), ("admin", Role.ADMIN)]:
        client = APIClient()
        client.force_login(make_user(f"{name}-user", role))
        clients[name] = client
    _token, raw = api_token_issue(actor=None, user=admin, name="reader", scopes=["read"])
    clients["read_token"] = APIClient()
    clients["read_token"].credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return {"clients": clients, "hook": hook.pk, "route": route.pk, "incident": incident.pk, "silence": silence.pk}


def expect(viewer=403, operator=403, admin=200, read_token=403, anonymous=401):
    return {"anonymous": anonymous, "viewer": viewer, "operator": operator, "admin": admin, "read_token": read_token}


READ = expect(viewer=200, operator=200, read_token=200)
IN_FUTURE = (timezone.now() + timedelta(hours=2)).isoformat()
MATRIX = [
    ("get", "/api/v1/notification-channels/", None, READ),
    ("get", "/api/v1/notification-channels/{hook}/", None, READ),
    (
        "post",
        "/api/v1/notification-channels/",
        {"name": "new", "kind": "email", "config": {"to": ["a@example.com"]}},
        expect(admin=201),
    ),
    ("patch", "/api/v1/notification-channels/{hook}/", {"enabled": True}, expect()),
    ("post", "/api/v1/notification-channels/{hook}/test/", None, expect(operator=200)),
    ("delete", "/api/v1/notification-channels/{hook}/", None, expect(admin=204)),
    ("get", "/api/v1/notification-routes/", None, READ),
    ("post", "/api/v1/notification-routes/", {"name": "r2", "severity": "page", "channels": []}, expect(admin=201)),
    ("patch", "/api/v1/notification-routes/{route}/", {"order": 5}, expect()),
    ("delete", "/api/v1/notification-routes/{route}/", None, expect(admin=204)),
    ("get", "/api/v1/alert-incidents/", None, READ),
    ("get", "/api/v1/alert-incidents/{incident}/", None, READ),
    ("post", "/api/v1/alert-incidents/{incident}/acknowledge/", {"note": "mine"}, expect(operator=200)),
    ("get", "/api/v1/silences/", None, READ),
    (
        "post",
        "/api/v1/silences/",
        {"owner_team": "platform", "reason": "deploy", "expires_at": IN_FUTURE},
        expect(operator=201, admin=201),
    ),
    ("post", "/api/v1/silences/preview/", {"owner_team": "platform"}, expect(operator=200, admin=200)),
    ("post", "/api/v1/silences/{silence}/end/", None, expect(operator=200)),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "url", "body", "expected"), MATRIX, ids=[f"{m} {u}" for m, u, _b, _e in MATRIX])
def test_permission_matrix(world, caller, method, url, body, expected):
    response = getattr(world["clients"][caller], method)(url.format(**world), data=body, format="json")
    assert response.status_code == expected[caller], (caller, response.content[:300])


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
