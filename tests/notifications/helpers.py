"""Shared set-up for notification tests: channels pointed at the test's receiver, and incidents
opened the way the evaluation opens them (alerts written, then incidents_sync in one transaction)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import transaction

from tests.factories import SloFactory, WorkloadClassFactory
from workloads.models import NotificationChannel, NotificationRoute, SloAlert
from workloads.services.alert_incidents import incidents_sync

T0 = datetime(2026, 3, 2, 12, 37, tzinfo=UTC)  # a Monday, 12:37 UTC
SECRET = "s3cret-for-signing"


def channel(kind: str, receiver=None, *, name: str | None = None, **config) -> NotificationChannel:
    secret = {
        "webhook": SECRET,
        "slack": f"{receiver.url}/slack/T000/B000/XXX" if receiver else "",
        "pagerduty": "R0UTINGKEY",
    }
    if kind == "webhook":
        config.setdefault("url", f"{receiver.url}/hook")
    if kind == "pagerduty":
        config.setdefault("events_url", f"{receiver.url}/v2/enqueue")
    return NotificationChannel.objects.create(
        name=name or f"{kind}-channel", kind=kind, config=config, secret=secret.get(kind, "")
    )


def default_route(*channels: NotificationChannel, **fields) -> NotificationRoute:
    route = NotificationRoute.objects.create(name=fields.pop("name", "default"), is_default=True, **fields)
    route.channels.set(channels)
    return route


def make_slo(slug: str = "billing-export", **class_fields):
    wc = WorkloadClassFactory(slug=slug, **class_fields)
    return SloFactory(workload_class=wc, kind="success_ratio")


def open_alert(slo, rule: str, severity: str, *, at: datetime, burn: float = 20.0) -> SloAlert:
    return SloAlert.objects.create(
        slo=slo,
        rule=rule,
        severity=severity,
        factor=14.4 if severity == "page" else 1.0,
        long_window_seconds=3600 if severity == "page" else 259200,
        short_window_seconds=300 if severity == "page" else 21600,
        opened_at=at,
        opened_long_burn_rate=burn,
        opened_short_burn_rate=burn,
        last_long_burn_rate=burn,
        last_short_burn_rate=burn,
        peak_short_burn_rate=burn,
        last_evaluated_at=at,
    )


def resolve(alert: SloAlert, *, at: datetime) -> None:
    SloAlert.objects.filter(pk=alert.pk).update(resolved_at=at)


def sync(now: datetime):
    with transaction.atomic():
        return incidents_sync(now=now)
