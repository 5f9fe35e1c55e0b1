"""Alerts reach people: one incident per SLO, notification channels and routes, the outbox of
notifications and the log of every delivery attempt, and silences.

An SloIncident groups the burn-rate alerts (SloAlert) of one SLO that are open together: it opens
with the first, takes the highest severity of those open, and resolves with the last. Its `key` is
stable for its whole life, so receivers update one thing (PagerDuty's dedup_key) instead of
collecting one message per alert window. An incident of kind `dead_letter_retention` has no SLO:
it belongs to a class whose oldest un-mirrored dead letter nears the dead-letter subscription's
retention (services/alert_incidents.py), and travels through the same routes and outbox; so does one of
kind `pool_unhealthy`, open while the class's pool is judged unhealthy (workloads.domain.health).

A Notification is an outbox row: written in the transaction that changes the incident, one per
channel the route chose, and delivered later by a Celery task that locks the row; each attempt is
a NotificationDelivery.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from workloads.models.classes import Slo, SloKind, Tier
from workloads.models.telemetry import AlertSeverity


class IncidentKind(models.TextChoices):
    SLO_BURN = "slo_burn", "SLO burn rate"
    DEAD_LETTER_RETENTION = "dead_letter_retention", "Dead-letter retention"
    POOL_UNHEALTHY = "pool_unhealthy", "Unhealthy pool"


class SloIncident(models.Model):
    kind = models.CharField(max_length=24, choices=IncidentKind.choices, default=IncidentKind.SLO_BURN)
    # Set for SLO burn incidents; a dead-letter retention incident names its class instead.
    slo = models.ForeignKey(Slo, on_delete=models.CASCADE, related_name="incidents", null=True, blank=True)
    workload_class = models.ForeignKey(
        "workloads.WorkloadClass", on_delete=models.CASCADE, related_name="+", null=True, blank=True
    )
    key = models.CharField(max_length=64, unique=True, help_text="Stable for the incident's life (dedup_key).")
    severity = models.CharField(max_length=8, choices=AlertSeverity.choices)
    # Counts the incident's state changes (open, severity changes, acknowledge, resolve): each
    # change's notifications carry its number, so a change is never written twice.
    sequence = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_by_label = models.CharField(max_length=150, blank=True)
    acknowledgement_note = models.TextField(blank=True)
    # Dead-letter retention incidents: the oldest un-mirrored dead letter's age at the last evaluation.
    dead_letter_oldest_age_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["slo"], condition=Q(resolved_at__isnull=True), name="one_open_incident_per_slo"
            ),
            models.UniqueConstraint(
                fields=["workload_class", "kind"],
                condition=Q(resolved_at__isnull=True, kind="dead_letter_retention"),
                name="one_open_retention_incident_per_class",
            ),
            models.UniqueConstraint(
                fields=["workload_class", "kind"],
                condition=Q(resolved_at__isnull=True, kind="pool_unhealthy"),
                name="one_open_pool_incident_per_class",
            ),
            models.CheckConstraint(
                condition=Q(kind="slo_burn", slo__isnull=False)
                | Q(kind="dead_letter_retention", workload_class__isnull=False)
                | Q(kind="pool_unhealthy", workload_class__isnull=False),
                name="incident_has_its_subject",
            ),
        ]
        indexes = [models.Index(fields=["resolved_at", "-opened_at"], name="sloincident_resolved_opened")]

    def __str__(self) -> str:
        return f"{self.key} ({'open' if self.resolved_at is None else 'resolved'})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def subject_class(self):
        """The class the incident is about (the SLO's, for an SLO burn)."""
        return self.slo.workload_class if self.slo_id else self.workload_class

    @property
    def subject_label(self) -> str:
        """What is wrong, in a few words: the SLO's kind, or "dead-letter retention"."""
        return self.slo.get_kind_display() if self.slo_id else self.get_kind_display()

    @property
    def is_acknowledged(self) -> bool:
        return self.acknowledged_at is not None


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (signed JSON)"
    SLACK = "slack", "Slack incoming webhook"
    PAGERDUTY = "pagerduty", "PagerDuty Events API v2"
    EMAIL = "email", "E-mail"
    DEMO = "demo", "Demo receiver (stored in the product)"


class NotificationChannel(models.Model):
    """Where notifications go. `secret` is write-only in the API and UI: the webhook's signing
    secret, the Slack incoming-webhook URL (which is itself a credential) or the PagerDuty routing
    key."""

    name = models.CharField(max_length=80, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    # webhook: {"url"}; pagerduty: {"events_url"} (optional, default PagerDuty's); email: {"to": [...]}
    config = models.JSONField(default=dict, blank=True)
    secret = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    # Set by the first failed delivery after a success, cleared by the next success: a channel
    # failing for NOTIFICATION_CHANNEL_FAILING_BANNER_SECONDS raises a banner.
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NotificationRoute(models.Model):
    """Which channels an incident notifies. Routes are tried in `order` (the default route last);
    the first whose matchers all hold wins. An empty matcher matches anything."""

    name = models.CharField(max_length=80, unique=True)
    order = models.PositiveIntegerField(default=100)
    is_default = models.BooleanField(default=False, help_text="Used when no other route matches.")
    owner_team = models.CharField(max_length=80, blank=True)
    tier = models.CharField(max_length=16, choices=Tier.choices, blank=True)
    workload_class_slug = models.CharField(max_length=48, blank=True)
    slo_kind = models.CharField(max_length=24, choices=SloKind.choices, blank=True)
    severity = models.CharField(max_length=8, choices=AlertSeverity.choices, blank=True)
    channels = models.ManyToManyField(NotificationChannel, related_name="routes", blank=True)
    hold_tickets_for_business_hours = models.BooleanField(
        default=False, help_text="Deliver ticket-severity notifications only Monday to Friday, 09:00-17:00."
    )
    business_hours_timezone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["is_default", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_route")
        ]

    def __str__(self) -> str:
        return self.name


class NotificationEvent(models.TextChoices):
    TRIGGER = "trigger", "Opened"
    UPDATE = "update", "Severity changed"
    ACKNOWLEDGE = "acknowledge", "Acknowledged"
    RESOLVE = "resolve", "Resolved"
    TEST = "test", "Test"


class NotificationState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (gave up)"
    SILENCED = "silenced", "Silenced"
    SUPPRESSED = "suppressed", "Suppressed (acknowledged)"


class Notification(models.Model):
    """One state change of one incident, for one channel (the outbox). `sequence` numbers the
    incident's state changes, so a re-run that finds the same change writes nothing new."""

    incident = models.ForeignKey(
        SloIncident, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="notifications")
    route = models.ForeignKey(NotificationRoute, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    event = models.CharField(max_length=12, choices=NotificationEvent.choices)
    sequence = models.PositiveIntegerField(default=0)
    severity = models.CharField(max_length=8, choices=AlertSeverity.choices, blank=True)
    # What the message says, frozen at the state change (later changes get rows of their own).
    context = models.JSONField(default=dict)
    state = models.CharField(max_length=12, choices=NotificationState.choices, default=NotificationState.PENDING)
    state_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "channel", "sequence"],
                condition=Q(incident__isnull=False),
                name="one_notification_per_incident_change_channel",
            )
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="notification_due"),
            models.Index(fields=["created_at"], name="notification_created"),
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.channel_id} ({self.state})"


class NotificationDelivery(models.Model):
    """One attempt to deliver a notification: what was sent and how the receiver answered."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    attempted_at = models.DateTimeField()
    ok = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    request_body = models.JSONField(default=dict, blank=True, help_text="Secrets left out.")
    response_body = models.TextField(blank=True)

    class Meta:
        ordering = ["-attempted_at", "-id"]
        indexes = [models.Index(fields=["attempted_at"], name="delivery_attempted")]

    def __str__(self) -> str:
        return f"{self.notification_id}@{self.attempted_at:%Y-%m-%dT%H:%M:%S} {'ok' if self.ok else 'failed'}"


class Silence(models.Model):
    """While active, incidents it matches notify no one (the rows are kept, marked silenced)."""

    owner_team = models.CharField(max_length=80, blank=True)
    tier = models.CharField(max_length=16, choices=Tier.choices, blank=True)
    workload_class_slug = models.CharField(max_length=48, blank=True)
    slo_kind = models.CharField(max_length=24, choices=SloKind.choices, blank=True)
    severity = models.CharField(max_length=8, choices=AlertSeverity.choices, blank=True)
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150)
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Set when ended before expiry.")

    class Meta:
        ordering = ["-starts_at", "-id"]

    def __str__(self) -> str:
        return f"Silence #{self.pk}: {self.reason[:40]}"

    def is_active_at(self, now) -> bool:
        return self.ended_at is None and self.starts_at <= now < self.expires_at
