"""Each channel kind against a real HTTP receiver: the exact request shapes (Slack incoming
webhooks, PagerDuty Events API v2), the webhook's HMAC signature, e-mail, retries and give-ups."""

import json
from datetime import timedelta

import pytest
from django.core import mail

from tests.notifications.helpers import SECRET, T0, channel, default_route, make_slo, open_alert, resolve, sync
from tests.notifications.receiver import Reply
from workloads.models import Notification, NotificationChannel, NotificationDelivery, NotificationState, SloIncident
from workloads.notifications import transport
from workloads.services.alert_incidents import incident_acknowledge
from workloads.services.notifications import channel_test_send, notifications_deliver_due


def page_then_resolve(slo, *, resolved_after=timedelta(minutes=20)):
    alert = open_alert(slo, "page-1h-5m", "page", at=T0)
    sync(T0)
    resolve(alert, at=T0 + resolved_after)
    sync(T0 + resolved_after)
    return SloIncident.objects.get(slo=slo)


def test_webhook_body_is_signed_over_timestamp_and_body(db, receiver):
    default_route(channel("webhook", receiver))
    slo = make_slo(runbook_url="https://runbooks.example.com/billing")
    incident = page_then_resolve(slo)
    notifications_deliver_due(now=T0 + timedelta(minutes=20))

    trigger, resolved = receiver.wait_for(2)
    headers = trigger.headers
    stamp = headers["x-controlplane-timestamp"]
    assert stamp == str(int((T0 + timedelta(minutes=20)).timestamp()))
    expected = transport.sign(SECRET, int(stamp), trigger.body)
    assert headers["x-controlplane-signature"] == expected
    assert transport.verify(SECRET, timestamp=stamp, body=trigger.body, signature=expected, now=int(stamp) + 10)
    # A replayed request with an old timestamp, or a body changed in transit, fails verification.
    assert not transport.verify(SECRET, timestamp=stamp, body=trigger.body, signature=expected, now=int(stamp) + 600)
    assert not transport.verify(SECRET, timestamp=stamp, body=trigger.body + b" ", signature=expected, now=int(stamp))
    assert headers["x-controlplane-event"] == "trigger"
    assert headers["x-controlplane-delivery"] == str(Notification.objects.get(event="trigger").pk)
    body = trigger.json()
    assert body["schema"] == "controlplane.notification/v1"
    assert body["incident"]["key"] == incident.key and body["incident"]["state"] == "open"
    assert body["workload_class"] == {
        "slug": "billing-export",
        "name": "Billing Export",
        "owner_team": "platform",
        "tier": "standard",
    }
    assert body["runbook_url"] == "https://runbooks.example.com/billing"
    assert body["alerts"][0]["rule"] == "page-1h-5m"
    assert resolved.json()["incident"]["state"] == "resolved" and resolved.json()["alerts"] == []


def test_slack_incoming_webhook_gets_block_kit_messages(db, receiver):
    default_route(channel("slack", receiver))
    incident = page_then_resolve(make_slo())
    notifications_deliver_due(now=T0 + timedelta(minutes=20))

    opened, resolved = receiver.wait_for(2)
    assert opened.path == "/slack/T000/B000/XXX"
    assert opened.headers["content-type"] == "application/json"
    message = opened.json()
    assert set(message) == {"text", "blocks"}
    assert message["text"] == "[Opened] PAGE: billing-export success ratio is burning its error budget"
    header, fields, alerts, context = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": message["text"]}}
    assert fields["type"] == "section" and all(f["type"] == "mrkdwn" for f in fields["fields"])
    assert alerts["type"] == "section" and "`page-1h-5m`" in alerts["text"]["text"]
    assert context["type"] == "context" and f"Incident `{incident.key}`" in context["elements"][0]["text"]
    assert "docs/runbook.md#4-page-success-ratio-or-latency|Runbook>" in context["elements"][0]["text"]
    # Incoming webhooks cannot edit a message: the resolve is a new message naming the incident.
    later = resolved.json()
    assert later["text"].startswith("[Resolved]")
    assert f"Incident `{incident.key}`" in later["blocks"][-1]["elements"][0]["text"]
    assert "updates the earlier message" in later["blocks"][-1]["elements"][0]["text"]


def test_pagerduty_events_v2_trigger_acknowledge_resolve_with_one_dedup_key(db, receiver, operator):
    receiver.default = Reply(202, json.dumps({"status": "success", "message": "Event processed"}))
    default_route(channel("pagerduty", receiver))
    slo = make_slo()
    page = open_alert(slo, "page-1h-5m", "page", at=T0)
    ticket = open_alert(slo, "ticket-3d-6h", "ticket", at=T0)
    sync(T0)
    incident = SloIncident.objects.get()
    incident_acknowledge(actor=operator, incident=incident, note="looking", now=T0 + timedelta(minutes=2))
    resolve(page, at=T0 + timedelta(minutes=5))
    sync(T0 + timedelta(minutes=5))  # down to a ticket: acknowledged, so no one is notified
    resolve(ticket, at=T0 + timedelta(minutes=9))
    sync(T0 + timedelta(minutes=9))
    notifications_deliver_due(now=T0 + timedelta(minutes=10))

    events = [r.json() for r in receiver.wait_for(3)]
    assert len(receiver.requests) == 3
    assert all(r.path == "/v2/enqueue" for r in receiver.requests)
    trigger, acknowledge, resolved = events
    assert trigger == {
        "routing_key": "R0UTINGKEY",
        "event_action": "trigger",
        "dedup_key": incident.key,
        "payload": {
            "summary": "[Opened] PAGE: billing-export success ratio is burning its error budget",
            "source": "controlplane/billing-export",
            "severity": "critical",
            "timestamp": "2026-03-02T12:37:00Z",
            "component": "billing-export",
            "group": "platform",
            "class": "slo-burn:success_ratio",
            "custom_details": trigger["payload"]["custom_details"],
        },
        "links": [
            {"href": "http://127.0.0.1:8000/classes/billing-export/", "text": "billing-export in the control plane"},
            {"href": "docs/runbook.md#4-page-success-ratio-or-latency", "text": "Runbook"},
        ],
        "client": "Control plane",
        "client_url": "http://127.0.0.1:8000",
    }
    assert acknowledge == {"routing_key": "R0UTINGKEY", "event_action": "acknowledge", "dedup_key": incident.key}
    assert resolved == {"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": incident.key}
    suppressed = Notification.objects.get(event="update")
    assert suppressed.state == NotificationState.SUPPRESSED and "operator" in suppressed.state_reason
    # The delivery log keeps what was sent, without the routing key.
    assert NotificationDelivery.objects.filter(request_body__routing_key="(secret)").count() == 3


def test_a_500_is_retried_with_backoff_until_it_succeeds(db, receiver):
    hook = channel("webhook", receiver)
    default_route(hook)
    receiver.reply_with(Reply(500, "boom"), Reply(503, "busy"))
    open_alert(make_slo(), "page-1h-5m", "page", at=T0)
    sync(T0)
    notification = Notification.objects.get()

    notifications_deliver_due(now=T0)
    notification.refresh_from_db()
    assert notification.state == NotificationState.PENDING and notification.attempts == 1
    first_wait = notification.next_attempt_at - T0
    assert timedelta(seconds=7.5) <= first_wait <= timedelta(seconds=15)  # base 15 s, half jitter
    notifications_deliver_due(now=T0 + timedelta(seconds=5))  # not due yet
    assert len(receiver.requests) == 1

    notifications_deliver_due(now=notification.next_attempt_at)
    notification.refresh_from_db()
    assert notification.attempts == 2
    assert timedelta(seconds=15) <= notification.next_attempt_at - notification.deliveries.first().attempted_at
    notifications_deliver_due(now=notification.next_attempt_at)
    notification.refresh_from_db()
    assert notification.state == NotificationState.SENT and notification.attempts == 3
    assert list(notification.deliveries.order_by("attempted_at").values_list("status_code", "ok")) == [
        (500, False),
        (503, False),
        (200, True),
    ]
    assert len(receiver.requests) == 3
    hook.refresh_from_db()
    assert hook.failing_since is None and hook.last_success_at is not None


def test_a_receiver_that_does_not_answer_in_time_is_retried(db, receiver, settings):
    settings.NOTIFICATION_HTTP_TIMEOUT_SECONDS = 0.3
    default_route(channel("webhook", receiver))
    receiver.reply_with(Reply(200, "late", delay=1.5))
    open_alert(make_slo(), "page-1h-5m", "page", at=T0)
    sync(T0)

    notifications_deliver_due(now=T0)
    notification = Notification.objects.get()
    attempt = notification.deliveries.get()
    assert not attempt.ok and attempt.status_code is None and "Timed out" in attempt.error
    assert notification.state == NotificationState.PENDING
    notifications_deliver_due(now=notification.next_attempt_at)
    notification.refresh_from_db()
    assert notification.state == NotificationState.SENT


def test_a_request_the_receiver_rejects_is_not_retried(db, receiver):
    hook = channel("slack", receiver)
    default_route(hook)
    receiver.reply_with(Reply(404, "no_service"))
    open_alert(make_slo(), "page-1h-5m", "page", at=T0)
    sync(T0)
    notifications_deliver_due(now=T0)
    notification = Notification.objects.get()
    assert notification.state == NotificationState.FAILED and notification.state_reason.startswith("HTTP 404")
    assert notification.deliveries.get().response_body == "no_service"
    hook.refresh_from_db()
    assert hook.failing_since == T0


def test_a_redirect_is_not_a_delivery(db, receiver):
    default_route(channel("webhook", receiver))
    receiver.reply_with(Reply(302, "moved", headers={"Location": "/elsewhere"}))
    open_alert(make_slo(), "page-1h-5m", "page", at=T0)
    sync(T0)
    notifications_deliver_due(now=T0)
    notification = Notification.objects.get()
    assert notification.state == NotificationState.FAILED and notification.state_reason.startswith("HTTP 302")
    assert [r.path for r in receiver.requests] == ["/hook"]  # not followed with a GET


def test_the_resolve_waits_for_the_trigger_still_being_retried(db, receiver):
    default_route(channel("webhook", receiver))
    receiver.reply_with(Reply(500))
    page_then_resolve(make_slo(), resolved_after=timedelta(seconds=1))
    notifications_deliver_due(now=T0 + timedelta(seconds=1))
    assert len(receiver.requests) == 1  # the trigger failed; the resolve did not overtake it
    notifications_deliver_due(now=T0 + timedelta(minutes=1))
    assert [r.json()["event"] for r in receiver.wait_for(3)] == ["trigger", "trigger", "resolve"]


def test_email_goes_through_djangos_mail_backend(db):
    default_route(channel("email", to=["oncall@example.com"]))
    incident = page_then_resolve(make_slo())
    notifications_deliver_due(now=T0 + timedelta(minutes=20))
    assert [m.to for m in mail.outbox] == [["oncall@example.com"], ["oncall@example.com"]]
    assert mail.outbox[0].subject.startswith("[Opened] PAGE: billing-export")
    assert incident.key in mail.outbox[0].body and "Runbook: docs/runbook.md#" in mail.outbox[0].body


@pytest.mark.parametrize("kind", ["webhook", "slack", "pagerduty"])
def test_send_a_test_notification(db, receiver, admin_user, kind):
    hook = channel(kind, receiver)
    delivery = channel_test_send(actor=admin_user, channel=hook, now=T0)
    assert delivery.ok
    (request,) = receiver.wait_for(1)
    assert "Test notification" in request.body.decode()


def test_a_failed_test_notification_is_reported_not_retried(db, receiver, admin_user):
    receiver.reply_with(Reply(500, "down"))
    hook = channel("webhook", receiver)
    delivery = channel_test_send(actor=admin_user, channel=hook, now=T0)
    assert not delivery.ok and delivery.status_code == 500
    assert delivery.notification.state == NotificationState.FAILED
    assert NotificationChannel.objects.get(pk=hook.pk).failing_since == T0
