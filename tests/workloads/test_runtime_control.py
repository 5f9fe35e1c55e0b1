"""The escape hatch: a `custom` class is never provisioned or scaled, and pause, resume and
incident mode reach its runtime as a signed signal on a real HTTP receiver, which acknowledges it
through the API; the screen shows sent, acknowledged or silent."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from tests.notifications.receiver import Reply, start_receiver
from tests.workloads.pools import run_pending
from workloads.models import ActionKind, AuditEvent, ControlSignal
from workloads.notifications import transport
from workloads.selectors.runtimes import signal_state
from workloads.services import incidents
from workloads.services.scaling import scaling_controller_tick

SECRET = "control-secret-for-tests"


@pytest.fixture
def receiver():
    r = start_receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def custom_class(db, receiver, settings):
    settings.RUNTIME_CONTROL_SIGNING_SECRET = SECRET
    return WorkloadClassFactory(
        slug="own-runtime", runtime="custom", runtime_resource="batch-cluster", tier="deferrable",
        control_webhook_url=receiver.url + "/control",
    )  # fmt: skip


def _send(client, kind="pause", reason="maintenance"):
    return client.post("/api/v1/classes/own-runtime/control-signals/", {"kind": kind, "reason": reason}, format="json")


def test_a_pause_reaches_the_runtime_signed_and_it_acknowledges(custom_class, receiver, client_as, operator, viewer):
    api = client_as(operator)
    response = _send(api)
    assert response.status_code == 202, response.content
    assert response.json()["state"] == "pending"
    (action,) = run_pending(kind=ActionKind.CONTROL_SIGNAL)
    assert action.state == "succeeded"
    (request,) = receiver.wait_for(1)
    body = request.json()
    assert request.path == "/control"
    assert body["kind"] == "pause" and body["workload_class"] == "own-runtime" and body["reason"] == "maintenance"
    assert transport.verify(
        SECRET,
        timestamp=request.headers["x-controlplane-timestamp"],
        body=request.body,
        signature=request.headers["x-controlplane-signature"],
        now=time.time(),
    )
    signal_id = body["signal_id"]
    assert body["acknowledge_url"].endswith(f"/api/v1/classes/own-runtime/control-signals/{signal_id}/ack/")
    listed = client_as(viewer).get("/api/v1/classes/own-runtime/control-signals/").json()
    assert listed[0]["state"] == "sent"

    ack = api.post(f"/api/v1/classes/own-runtime/control-signals/{signal_id}/ack/")
    assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"
    assert api.post(f"/api/v1/classes/own-runtime/control-signals/{signal_id}/ack/").status_code == 200  # idempotent
    assert client_as(viewer).post(f"/api/v1/classes/own-runtime/control-signals/{signal_id}/ack/").status_code == 403
    actions = set(AuditEvent.objects.filter(action__startswith="runtime_control.").values_list("action", flat=True))
    assert actions == {"runtime_control.pause", "runtime_control.acknowledge"}


def test_an_unacknowledged_signal_turns_silent(custom_class, receiver, client_as, operator, settings):
    _send(client_as(operator))
    run_pending(kind=ActionKind.CONTROL_SIGNAL)
    signal = ControlSignal.objects.get()
    assert signal_state(signal, now=timezone.now()) == "sent"
    later = timezone.now() + timedelta(seconds=settings.RUNTIME_CONTROL_ACK_SECONDS + 1)
    assert signal_state(signal, now=later) == "silent"


def test_a_refusing_runtime_fails_the_signal_with_its_answer(custom_class, receiver, client_as, operator):
    receiver.reply_with(Reply(status=404, body="no such endpoint"))
    _send(client_as(operator))
    (action,) = run_pending(kind=ActionKind.CONTROL_SIGNAL)
    assert action.state == "failed"
    signal = ControlSignal.objects.select_related("action").get()
    assert signal_state(signal, now=timezone.now()) == "failed"
    assert "HTTP 404" in signal.last_error


def test_incident_mode_signals_the_runtime_and_exit_resumes_it(custom_class, receiver, operator):
    result = incidents.incident_mode_enter(actor=operator, reason="database failover")
    assert [s.kind for s in ControlSignal.objects.all()] == ["pause"]
    assert ControlSignal.objects.get().incident == result.incident
    incidents.incident_mode_exit(actor=operator, reason="over")
    assert sorted(s.kind for s in ControlSignal.objects.all()) == ["pause", "resume"]
    run_pending(kind=ActionKind.CONTROL_SIGNAL)
    assert [r.json()["kind"] for r in receiver.wait_for(2)] == ["pause", "resume"]
    enter = AuditEvent.objects.get(action="incident_mode.enter")
    assert enter.extra["signalled"] == ["own-runtime"]


def test_the_escape_hatch_keeps_its_runtime_its_own(custom_class, client_as, operator):
    summary = scaling_controller_tick(now=timezone.now())
    assert summary.skipped["own-runtime"] == "observed runtime: not scaled by the control plane"
    refused = client_as(operator).post("/api/v1/classes/own-runtime/pause", {"reason": "x"}, format="json")
    assert refused.status_code == 409 and "control-signals" in refused.json()["detail"]
    bad = client_as(operator).post("/api/v1/classes/own-runtime/control-signals/", {"kind": "stop"}, format="json")
    assert bad.status_code == 400


def test_a_worker_pool_class_gets_no_signal(db, client_as, operator):
    WorkloadClassFactory(slug="pooled", control_webhook_url="http://127.0.0.1:9/x")
    response = client_as(operator).post("/api/v1/classes/pooled/control-signals/", {"kind": "pause"}, format="json")
    assert response.status_code == 409 and response.json()["type"] == "managed_runtime"


def test_the_class_page_shows_the_signals_and_their_state(custom_class, receiver, operator):
    from django.test import Client

    client = Client()
    client.force_login(operator)
    response = client.post("/classes/own-runtime/control-signal/", {"kind": "pause", "reason": "drain"})
    assert response.status_code == 302
    run_pending(kind=ActionKind.CONTROL_SIGNAL)
    html = client.get("/classes/own-runtime/").content.decode()
    assert 'id="runtime-control"' in html
    assert 'data-state="sent"' in html and "awaiting acknowledgement" in html
