"""Notification channels and routes (audited writes), delivery of the outbox, test sends, prune.

Delivery takes one due notification at a time under a row lock (SKIP LOCKED on PostgreSQL), sends
it, records the attempt and moves the row on in the same transaction: two workers never send the
same row, and a sent row is never picked again. A notification waits while an earlier change of
the same incident to the same channel is still pending, so a receiver never sees the resolve
before the trigger. Failures back off exponentially with jitter until NOTIFICATION_MAX_ATTEMPTS;
a 4xx that retrying cannot fix (other than 408 and 429) gives up at once.

If the process dies between the receiver's answer and the commit, the row is sent again: delivery
is at least once, and the `X-Controlplane-Delivery` header (the notification's id; PagerDuty:
the dedup_key) lets a receiver drop the repeat.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef

from workloads.batch_delete import delete_in_batches
from workloads.errors import ApplicationError
from workloads.models import (
    ChannelKind,
    Notification,
    NotificationChannel,
    NotificationDelivery,
    NotificationEvent,
    NotificationRoute,
    NotificationState,
    Silence,
    SloIncident,
)
from workloads.notifications import messages, transport
from workloads.services.audit import audit_event_record, diff, snapshot

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


# --- Channels and routes ---------------------------------------------------------------------------------
def _check_url(url: str, field: str) -> None:
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ApplicationError(f"{field} must be an http(s) URL.", code="invalid_url", status=400)


def channel_validate(*, kind: str, config: dict, secret: str) -> None:
    """What each kind needs, as a 400 that names the field."""
    if kind == ChannelKind.WEBHOOK:
        _check_url(config.get("url", ""), "config.url")
        if not secret:
            raise ApplicationError("A webhook needs a signing secret.", code="secret_required", status=400)
    elif kind == ChannelKind.SLACK:
        _check_url(secret, "The Slack incoming-webhook URL (secret)")
    elif kind == ChannelKind.PAGERDUTY:
        if not secret:
            raise ApplicationError(
                "PagerDuty needs the routing (integration) key as secret.", code="secret_required", status=400
            )
        if config.get("events_url"):
            _check_url(config["events_url"], "config.events_url")
    elif kind == ChannelKind.EMAIL:
        recipients = config.get("to")
        if not isinstance(recipients, list) or not recipients or not all("@" in str(r) for r in recipients):
            raise ApplicationError(
                "config.to must be a list of e-mail addresses.", code="invalid_recipients", status=400
            )


_SECRET_EXCLUDED = {"secret", "failing_since", "last_error", "last_success_at"}


def channel_create(*, actor, name: str, kind: str, config: dict, secret: str, enabled: bool = True):
    channel_validate(kind=kind, config=config, secret=secret)
    with transaction.atomic():
        channel = NotificationChannel.objects.create(
            name=name, kind=kind, config=config, secret=secret, enabled=enabled
        )
        audit_event_record(
            actor=actor,
            action="notification_channel.create",
            target=channel,
            changes={k: [None, v] for k, v in snapshot(channel, exclude=_SECRET_EXCLUDED).items()},
            extra={"secret": "set" if secret else "empty"},
        )
    return channel


def channel_update(*, actor, channel: NotificationChannel, data: dict) -> NotificationChannel:
    """`data` may hold name, config, enabled and secret; an absent secret keeps the current one."""
    with transaction.atomic():
        channel = NotificationChannel.objects.select_for_update().get(pk=channel.pk)
        before = snapshot(channel, exclude=_SECRET_EXCLUDED)
        for field in ("name", "config", "enabled"):
            if field in data:
                setattr(channel, field, data[field])
        secret_changed = bool(data.get("secret"))
        if secret_changed:
            channel.secret = data["secret"]
        channel_validate(kind=channel.kind, config=channel.config, secret=channel.secret)
        channel.save()
        audit_event_record(
            actor=actor,
            action="notification_channel.update",
            target=channel,
            changes=diff(before, snapshot(channel, exclude=_SECRET_EXCLUDED)),
            extra={"secret": "changed"} if secret_changed else {},
        )
    return channel


def channel_delete(*, actor, channel: NotificationChannel) -> None:
    with transaction.atomic():
        audit_event_record(actor=actor, action="notification_channel.delete", target=channel)
        channel.delete()


ROUTE_FIELDS = (
    "name",
    "order",
    "is_default",
    "owner_team",
    "tier",
    "workload_class_slug",
    "slo_kind",
    "severity",
    "hold_tickets_for_business_hours",
    "business_hours_timezone",
)


def _route_check(route: NotificationRoute) -> None:
    try:
        ZoneInfo(route.business_hours_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApplicationError(
            f"Unknown time zone {route.business_hours_timezone!r} (use an IANA name such as Europe/Berlin).",
            code="invalid_timezone",
            status=400,
        ) from None
    if route.is_default and NotificationRoute.objects.filter(is_default=True).exclude(pk=route.pk).exists():
        raise ApplicationError("There is already a default route.", code="default_route_exists", status=400)


def route_save(*, actor, route: NotificationRoute | None, data: dict, channels: list[NotificationChannel]):
    """Create (route=None) or update a route and set its channels."""
    with transaction.atomic():
        creating = route is None
        if creating:
            route = NotificationRoute()
            before = {}
        else:
            route = NotificationRoute.objects.select_for_update().get(pk=route.pk)
            before = snapshot(route) | {"channels": sorted(route.channels.values_list("pk", flat=True))}
        for field in ROUTE_FIELDS:
            if field in data:
                setattr(route, field, data[field])
        _route_check(route)
        route.save()
        route.channels.set(channels)
        after = snapshot(route) | {"channels": sorted(c.pk for c in channels)}
        audit_event_record(
            actor=actor,
            action="notification_route.create" if creating else "notification_route.update",
            target=route,
            changes=diff(before, after),
        )
    return route


def route_delete(*, actor, route: NotificationRoute) -> None:
    with transaction.atomic():
        audit_event_record(actor=actor, action="notification_route.delete", target=route)
        route.delete()


# --- Sending one notification ----------------------------------------------------------------------------
def _send(notification: Notification, now: datetime) -> tuple[transport.Outcome, dict]:
    """Send through the channel's kind; returns the outcome and the body to log (no secrets)."""
    channel = notification.channel
    context = notification.context
    timeout = settings.NOTIFICATION_HTTP_TIMEOUT_SECONDS
    if channel.kind in (ChannelKind.WEBHOOK, ChannelKind.DEMO):
        body = messages.webhook_body(context, delivery_id=notification.pk)
        if channel.kind == ChannelKind.DEMO:
            # The demo receiver is this product: the body is stored as the delivery's request body
            # and listed on the demo-receiver page, with no network hop.
            return transport.Outcome(ok=True, status_code=200, response_body="stored by the demo receiver"), body
        raw = transport.encode(body)
        stamp = int(now.timestamp())
        headers = {
            transport.TIMESTAMP_HEADER: str(stamp),
            transport.SIGNATURE_HEADER: transport.sign(channel.secret, stamp, raw),
            transport.DELIVERY_HEADER: str(notification.pk),
            transport.EVENT_HEADER: notification.event,
        }
        return transport.post_json(channel.config["url"], raw, headers=headers, timeout=timeout), body
    if channel.kind == ChannelKind.SLACK:
        body = messages.slack_message(context)
        return transport.post_json(channel.secret, transport.encode(body), headers={}, timeout=timeout), body
    if channel.kind == ChannelKind.PAGERDUTY:
        body = messages.pagerduty_event(
            context, routing_key=channel.secret, client_url=settings.CONTROLPLANE_PUBLIC_URL
        )
        url = channel.config.get("events_url") or PAGERDUTY_EVENTS_URL
        logged = {**body, "routing_key": "(secret)"}
        return transport.post_json(url, transport.encode(body), headers={}, timeout=timeout), logged
    subject, text = messages.email_message(context)
    try:
        send_mail(subject, text, settings.NOTIFICATION_EMAIL_FROM, list(channel.config.get("to", [])))
    except Exception as exc:  # noqa: BLE001 (any mail backend's error is a failed attempt, logged)
        return transport.Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"), {"subject": subject}
    return transport.Outcome(ok=True), {"subject": subject, "to": channel.config.get("to", []), "body": text}


def retry_delay(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: base x 2^(attempts-1), capped, with half jitter."""
    ceiling = min(
        settings.NOTIFICATION_RETRY_MAX_SECONDS, settings.NOTIFICATION_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    )
    return random.uniform(ceiling / 2, ceiling)


def _attempt(notification: Notification, now: datetime, *, retry: bool = True) -> NotificationDelivery:
    """One attempt, recorded; call with the notification locked."""
    outcome, body = _send(notification, now)
    notification.attempts += 1
    delivery = NotificationDelivery.objects.create(
        notification=notification,
        attempted_at=now,
        ok=outcome.ok,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        request_body=body,
        response_body=outcome.response_body,
    )
    channel = notification.channel
    if outcome.ok:
        notification.state, notification.sent_at, notification.state_reason = NotificationState.SENT, now, ""
        NotificationChannel.objects.filter(pk=channel.pk).update(failing_since=None, last_error="", last_success_at=now)
    else:
        gave_up = not retry or not outcome.retryable or notification.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS
        if gave_up:
            notification.state = NotificationState.FAILED
            notification.state_reason = outcome.error[:255]
        else:
            notification.next_attempt_at = now + timedelta(seconds=retry_delay(notification.attempts))
            notification.state_reason = f"Retrying after: {outcome.error}"[:255]
        NotificationChannel.objects.filter(pk=channel.pk, failing_since__isnull=True).update(failing_since=now)
        NotificationChannel.objects.filter(pk=channel.pk).update(last_error=outcome.error[:1000])
    notification.save(update_fields=["state", "state_reason", "attempts", "next_attempt_at", "sent_at"])
    return delivery


def _due(now: datetime):
    earlier_pending = Notification.objects.filter(
        incident=OuterRef("incident"),
        channel=OuterRef("channel"),
        sequence__lt=OuterRef("sequence"),
        state=NotificationState.PENDING,
    )
    return (
        Notification.objects.filter(state=NotificationState.PENDING, next_attempt_at__lte=now, channel__enabled=True)
        .filter(~Exists(earlier_pending))
        .order_by("next_attempt_at", "id")
    )


@dataclass
class DeliverySummary:
    sent: int = 0
    failed: int = 0


def notifications_deliver_due(*, now: datetime, limit: int = 200) -> DeliverySummary:
    """Deliver up to `limit` due notifications, one locked row per transaction."""
    summary = DeliverySummary()
    for _ in range(limit):
        with transaction.atomic():
            notification = _due(now).select_for_update(skip_locked=True, of=("self",)).first()
            if notification is None:
                break
            notification.channel = NotificationChannel.objects.get(pk=notification.channel_id)
            delivery = _attempt(notification, now)
        if delivery.ok:
            summary.sent += 1
        else:
            summary.failed += 1
    return summary


def channel_test_send(*, actor, channel: NotificationChannel, now: datetime) -> NotificationDelivery:
    """Send a test message at once (one attempt, no retries) and record it like any other."""
    context = {
        "event": NotificationEvent.TEST,
        "channel": channel.name,
        "sent_at": now.isoformat().replace("+00:00", "Z"),
        "test_key": f"controlplane-test-{channel.pk}-{int(now.timestamp())}",
        "runbook_url": settings.RUNBOOK_BASE_URL,
    }
    with transaction.atomic():
        notification = Notification.objects.create(
            channel=channel, event=NotificationEvent.TEST, context=context, created_at=now, next_attempt_at=now
        )
        delivery = _attempt(notification, now, retry=False)
        audit_event_record(
            actor=actor,
            action="notification_channel.test",
            target=channel,
            result="success" if delivery.ok else "failure",
            extra={"status_code": delivery.status_code, "error": delivery.error},
        )
    return delivery


# --- The demo receiver ------------------------------------------------------------------------------------
DEMO_CHANNEL_NAME = "demo receiver"
DEMO_ROUTE_NAME = "default: demo receiver"


def demo_receiver_seed(*, actor=None) -> str:
    """For `make run`: a `demo` channel and, when no default route exists, a default route to it,
    so a newcomer sees incidents arrive on the demo-receiver page. Idempotent."""
    channel = NotificationChannel.objects.filter(name=DEMO_CHANNEL_NAME).first()
    created = channel is None
    if created:
        channel = channel_create(actor=actor, name=DEMO_CHANNEL_NAME, kind=ChannelKind.DEMO, config={}, secret="")
    if not NotificationRoute.objects.filter(is_default=True).exists():
        route_save(actor=actor, route=None, data={"name": DEMO_ROUTE_NAME, "is_default": True}, channels=[channel])
        created = True
    return "created" if created else "unchanged"


# --- Prune (run by the `prune` beat task, workloads.services.pruning) ----------------------------------------
def notifications_prune(*, now: datetime, batch_size: int) -> dict[str, int]:
    """Delete, in batches, notifications (delivery attempts first) older than
    NOTIFICATION_RETENTION_DAYS, resolved incidents and expired silences older than it too. Rows
    still pending for an enabled channel are kept whatever their age (they are still to be sent);
    a disabled channel's are not."""
    cutoff = now - timedelta(days=settings.NOTIFICATION_RETENTION_DAYS)
    old_incidents = SloIncident.objects.filter(resolved_at__lt=cutoff)
    old = Notification.objects.filter(created_at__lt=cutoff).exclude(
        state=NotificationState.PENDING, channel__enabled=True
    ) | Notification.objects.filter(incident__in=old_incidents)
    deliveries = delete_in_batches(
        NotificationDelivery.objects.filter(notification__in=old.values("pk")), batch_size=batch_size
    )
    return {
        "deliveries": deliveries,
        "notifications": delete_in_batches(old, batch_size=batch_size),
        "incidents": delete_in_batches(old_incidents, batch_size=batch_size),
        "silences": delete_in_batches(Silence.objects.filter(expires_at__lt=cutoff), batch_size=batch_size),
    }
