"""Reads for alert incidents and notifications: incidents with their alerts and delivery log,
failing channels (the banner), active silences and what the demo receiver got."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet

from workloads.models import (
    ChannelKind,
    Notification,
    NotificationChannel,
    NotificationDelivery,
    Silence,
    SloAlert,
    SloIncident,
)


def incident_queryset(*, state: str = "", environment=None) -> QuerySet[SloIncident]:
    incidents = SloIncident.objects.select_related("slo__workload_class", "workload_class").prefetch_related(
        Prefetch("alerts", queryset=SloAlert.objects.order_by("opened_at", "id")),
        Prefetch(
            "notifications",
            queryset=Notification.objects.select_related("channel")
            .prefetch_related("deliveries")
            .order_by("sequence", "channel__name"),
        ),
    )
    if environment is not None:  # an incident's class is its SLO's, or its own for those without an SLO
        incidents = incidents.filter(
            Q(slo__workload_class__environment=environment) | Q(workload_class__environment=environment)
        )
    if state == "open":
        incidents = incidents.filter(resolved_at__isnull=True)
    elif state == "resolved":
        incidents = incidents.filter(resolved_at__isnull=False)
    return incidents.order_by("-opened_at", "-id")


def incident_state(incident: SloIncident) -> str:
    if incident.resolved_at is not None:
        return "resolved"
    return "acknowledged" if incident.acknowledged_at is not None else "open"


def open_incidents_by_slo(*, slo_ids: list[int]) -> dict[int, SloIncident]:
    return {
        incident.slo_id: incident
        for incident in SloIncident.objects.filter(resolved_at__isnull=True, slo_id__in=slo_ids)
    }


def channel_is_failing(channel: NotificationChannel, *, now: datetime) -> bool:
    threshold = timedelta(seconds=settings.NOTIFICATION_CHANNEL_FAILING_BANNER_SECONDS)
    return channel.enabled and channel.failing_since is not None and now - channel.failing_since >= threshold


def failing_channels(*, now: datetime) -> list[NotificationChannel]:
    """Enabled channels whose deliveries have failed without a success for the banner threshold."""
    threshold = now - timedelta(seconds=settings.NOTIFICATION_CHANNEL_FAILING_BANNER_SECONDS)
    return list(NotificationChannel.objects.filter(enabled=True, failing_since__lte=threshold).order_by("name"))


def active_silences(*, now: datetime) -> QuerySet[Silence]:
    return Silence.objects.filter(ended_at__isnull=True, starts_at__lte=now, expires_at__gt=now).order_by("expires_at")


def demo_received(*, limit: int = 100) -> QuerySet[NotificationDelivery]:
    """What the demo receiver got, newest first: the stored bodies of demo channels' deliveries."""
    return (
        NotificationDelivery.objects.filter(notification__channel__kind=ChannelKind.DEMO, ok=True)
        .select_related("notification__channel")
        .order_by("-attempted_at", "-id")[:limit]
    )
