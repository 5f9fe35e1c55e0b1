"""The incident-mode, pause, scaling, preview and comparison endpoints: the flows an incident bot
uses. Their role checks for every kind of caller are in test_incidents_permissions.py."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.roles import Role
from tests.workloads.pools import pooled_class, run_pending
from workloads.models import AuditEvent, IncidentMode, PoolHold

_DAY = timezone.now().replace(microsecond=0) - timedelta(days=1)
COMPARE = (
    f"/api/v1/comparisons?a_class=existing-class&a_start={(_DAY - timedelta(days=1)).isoformat()}"
    f"&a_end={_DAY.isoformat()}&b_start={_DAY.isoformat()}&b_end={(_DAY + timedelta(hours=12)).isoformat()}"
).replace("+", "%2B")


def test_an_incident_bot_enters_and_exits_with_a_token(db, make_user, token_client):
    pooled_class("batch-enrich", instances=4)
    bot, _token = token_client(make_user("incident-bot", Role.OPERATOR))
    idle = {"active": False, "changed": False, "incident": None, "warnings": []}
    assert bot.get("/api/v1/incident-mode").json() == idle

    body = {"reason": "PagerDuty P1: database failover", "ticket": "INC-1234", "expires_in_minutes": 90}
    entered = bot.post("/api/v1/incident-mode", body, format="json")
    assert entered.status_code == 202
    data = entered.json()
    assert data["active"] and data["changed"] and data["incident"]["ticket"] == "INC-1234"
    assert data["incident"]["started_by_label"] == "incident-bot"
    [hold] = data["incident"]["holds"]
    assert hold["workload_class"] == "batch-enrich" and hold["bounds_when_paused"] == {
        "min": 0,
        "max": 10,
        "source": "baseline",
    }
    assert data["incident"]["enter_action"]["kind"] == "incident_enter"
    event = AuditEvent.objects.get(action="incident_mode.enter")
    assert event.via == "api" and event.actor_label == "incident-bot (token test-token)"

    again = bot.post("/api/v1/incident-mode", body, format="json")
    assert again.status_code == 200 and not again.json()["changed"]
    run_pending()
    assert bot.get("/api/v1/incident-mode").json()["incident"]["holds"][0]["previous_count"] == 4

    exited = bot.delete("/api/v1/incident-mode", {"reason": "resolved"}, format="json")
    assert exited.status_code == 202 and exited.json()["incident"]["end_reason"] == "exited"
    assert not exited.json()["active"]
    retried = bot.delete("/api/v1/incident-mode", format="json")
    assert retried.status_code == 200 and not retried.json()["changed"]
    run_pending()
    assert PoolHold.objects.get().restored_count == 4


def test_get_previews_the_retention_warnings_of_entering(db, viewer, client_as):
    short = pooled_class("short-retention", instances=1)
    short.message_retention_seconds = 3600
    short.save()
    client = client_as(viewer)
    assert client.get("/api/v1/incident-mode?expires_in_minutes=30").json()["warnings"] == []
    [warning] = client.get("/api/v1/incident-mode?expires_in_minutes=120").json()["warnings"]
    assert warning.startswith("short-retention: the subscription keeps messages for 1 h")


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "reason"), ({"reason": "   "}, "reason"), ({"reason": "x", "expires_in_minutes": 1}, "expires_in_minutes")],
)
def test_entering_needs_a_reason_and_a_sane_expiry(db, operator, client_as, body, field):
    response = client_as(operator).post("/api/v1/incident-mode", body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"]
    assert not IncidentMode.objects.exists()


def test_exit_and_extend_without_an_incident_are_conflicts(db, operator, client_as):
    client = client_as(operator)
    assert client.delete("/api/v1/incident-mode").json()["type"] == "not_active"
    assert client.patch("/api/v1/incident-mode", {"expires_in_minutes": 60}, format="json").status_code == 409


def test_pause_resume_and_extend_one_class(db, operator, client_as):
    workload_class = pooled_class("doc-render", instances=3, tier="standard")
    client = client_as(operator)
    assert client.get("/api/v1/classes/doc-render/pause").json()["hold"] is None
    assert client.delete("/api/v1/classes/doc-render/pause").json()["type"] == "not_paused"
    paused = client.post("/api/v1/classes/doc-render/pause", {"reason": "bad deploy"}, format="json")
    assert paused.status_code == 202 and paused.json()["paused"]
    assert paused.json()["hold"]["pause_action"]["kind"] == "pause"
    run_pending()
    extended = client.patch("/api/v1/classes/doc-render/pause", {"expires_in_minutes": 600}, format="json").json()
    assert extended["hold"]["previous_count"] == 3
    resumed = client.delete("/api/v1/classes/doc-render/pause")
    assert resumed.status_code == 202 and resumed.json()["hold"]["state"] == "restoring"
    run_pending()
    assert client.get("/api/v1/classes/doc-render/pause").json()["hold"]["restored_count"] == 3
    assert client.post("/api/v1/classes/no-such-class/pause", {"reason": "x"}, format="json").status_code == 404
    assert workload_class.holds.count() == 1


def test_the_schedule_preview_endpoint(db, viewer, client_as):
    pooled_class("doc-render", instances=1, tier="standard")
    client = client_as(viewer)
    body = client.get("/api/v1/classes/doc-render/schedule-preview?hours=24&backlog=600").json()
    assert len(body["hours"]) == 24 and body["changes"] == [] and body["backlog"] == 600
    assert body["hours"][0]["window"] == "baseline" and body["hours"][0]["target"] == 2
    assert client.get("/api/v1/classes/doc-render/schedule-preview?hours=1000").status_code == 400


def test_the_comparison_endpoint_validates_its_periods(db, viewer, client_as):
    pooled_class("existing-class", instances=1, tier="standard")
    client = client_as(viewer)
    body = client.get(COMPARE).json()
    assert body["a"]["workload_class"] == body["b"]["workload_class"] == "existing-class"
    assert body["a"]["outcomes"] == 0 and body["a"]["failure_rate"] is None
    swapped = COMPARE.replace("a_end=", "a_end_old=").replace("a_start=", "a_end=").replace("a_end_old=", "a_start=")
    assert client.get(swapped).json()["errors"] == {"a_start": ["start must be before end."]}
    assert "a_class" in client.get("/api/v1/comparisons").json()["errors"]
