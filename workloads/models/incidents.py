"""Incident mode, pauses of single pools, and the scaling controller's per-class bookkeeping.

A pause of a class's worker pool is a PoolHold, whether incident mode made it (one per deferrable
class) or an operator paused the class on its own. The hold remembers the instance count the pool
had and the schedule bounds in force when it was paused, so the restore can put back exactly what
was there, or the schedule's target when the schedule moved meanwhile.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class IncidentEndReason(models.TextChoices):
    EXITED = "exited", "Exited"
    EXPIRED = "expired", "Expired"


class IncidentMode(models.Model):
    reason = models.TextField()
    ticket = models.CharField(max_length=200, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by_label = models.CharField(max_length=150)
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ended_by_label = models.CharField(max_length=150, blank=True)
    end_reason = models.CharField(max_length=10, choices=IncidentEndReason.choices, blank=True)
    enter_action = models.ForeignKey(
        "workloads.Action", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    exit_action = models.ForeignKey(
        "workloads.Action", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Null: every environment's deferrable classes; otherwise only that environment's.
    environment = models.ForeignKey(
        "workloads.Environment", null=True, blank=True, on_delete=models.PROTECT, related_name="incidents"
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # At most one active incident for every environment at once. Every active row has the
            # same end_reason (""), so a unique index on it restricted to active rows allows exactly
            # one; unlike a constant expression or NULLS NOT DISTINCT this works on PostgreSQL and
            # SQLite alike.
            models.UniqueConstraint(
                fields=["end_reason"],
                condition=Q(ended_at__isnull=True, environment__isnull=True),
                name="one_active_incident_mode",
            ),
            # ... and at most one active incident per environment.
            models.UniqueConstraint(
                fields=["environment"],
                condition=Q(ended_at__isnull=True),
                name="one_active_incident_mode_per_environment",
            ),
        ]

    def __str__(self) -> str:
        state = "active" if self.is_active else self.end_reason
        scope = f" in {self.environment.slug}" if self.environment_id else ""
        return f"Incident mode #{self.pk}{scope} ({state})"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


class HoldState(models.TextChoices):
    ACTIVE = "active", "Paused"
    RESTORING = "restoring", "Restoring"
    RESTORED = "restored", "Restored"
    FAILED = "failed", "Could not pause"


OPEN_HOLD_STATES = (HoldState.ACTIVE, HoldState.RESTORING)


class RestoreRule(models.TextChoices):
    PREVIOUS = "previous", "The count it had"
    SCHEDULE_TARGET = "schedule_target", "The schedule's current target"
    NOTHING = "nothing", "Nothing to restore (never paused)"


class PoolHold(models.Model):
    """A class's worker pool held at 0 instances (a pause, by incident mode or on its own) or at
    `hold_count` instances (a manual override), until it is resumed or expires."""

    workload_class = models.ForeignKey("workloads.WorkloadClass", on_delete=models.CASCADE, related_name="holds")
    incident = models.ForeignKey(IncidentMode, null=True, blank=True, on_delete=models.CASCADE, related_name="holds")
    reason = models.TextField()
    expires_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=HoldState.choices, default=HoldState.ACTIVE, db_index=True)
    # 0 for a pause; a manual override holds the pool at this many instances instead.
    hold_count = models.PositiveIntegerField(default=0)

    # What the pool looked like when it was paused (the count is read by the pause step itself).
    previous_count = models.PositiveIntegerField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True, help_text="When the pool reached 0.")
    bounds_min = models.PositiveIntegerField(help_text="The schedule's min instances when paused.")
    bounds_max = models.PositiveIntegerField(help_text="The schedule's max instances when paused.")
    bounds_source = models.CharField(max_length=64, help_text="'baseline' or the schedule window's name.")

    # How it was restored.
    restored_count = models.PositiveIntegerField(null=True, blank=True)
    restore_rule = models.CharField(max_length=16, choices=RestoreRule.choices, blank=True)
    restore_detail = models.CharField(max_length=255, blank=True)

    pause_action = models.ForeignKey(
        "workloads.Action", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    restore_action = models.ForeignKey(
        "workloads.Action", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_error = models.TextField(blank=True)
    last_error_code = models.CharField(max_length=32, blank=True)
    retention_warning = models.CharField(
        max_length=255, blank=True, help_text="Set when the hold may outlast the subscription's message retention."
    )

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=150)
    created_at = models.DateTimeField()
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ended_by_label = models.CharField(max_length=150, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One pause at a time per class: incident mode skips a class that is already paused.
            models.UniqueConstraint(
                fields=["workload_class"],
                condition=Q(state__in=["active", "restoring"]),
                name="one_open_hold_per_class",
            )
        ]
        indexes = [models.Index(fields=["state", "expires_at"], name="poolhold_state_expires")]

    def __str__(self) -> str:
        return f"{self.workload_class_id} hold #{self.pk} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_HOLD_STATES

    @property
    def is_override(self) -> bool:
        return self.hold_count > 0


class PoolHealth(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    HEALTHY = "healthy", "Healthy"
    UNHEALTHY = "unhealthy", "Unhealthy"


class UnhealthyCause(models.TextChoices):
    CRASH_LOOPING = "crash_looping", "Crash-looping"
    NO_HANDLER = "no_handler", "No handler"
    STUCK = "stuck", "Stuck"
    # Where worker exits cannot be seen (Cloud Run): instances run, no worker reports arrive.
    NO_REPORTS = "no_reports", "No worker reports"


class PoolControl(models.Model):
    """The scaling controller's memory of one class's pool: what it last set, what it last saw,
    whether someone else changed the pool (drift), and who took it back."""

    workload_class = models.OneToOneField(
        "workloads.WorkloadClass", on_delete=models.CASCADE, primary_key=True, related_name="pool_control"
    )
    controller_enabled = models.BooleanField(default=True)
    last_set_count = models.PositiveIntegerField(
        null=True, blank=True, help_text="The count the control plane last set (scale, pause or restore)."
    )
    last_set_at = models.DateTimeField(null=True, blank=True, help_text="Cooldowns count from here.")
    last_set_reason = models.CharField(max_length=255, blank=True)
    last_observed_count = models.PositiveIntegerField(null=True, blank=True)
    last_observed_at = models.DateTimeField(null=True, blank=True)
    last_modifier = models.CharField(max_length=255, blank=True, help_text="Who changed the pool last, per provider.")
    drifted_since = models.DateTimeField(null=True, blank=True)
    drift_detail = models.CharField(max_length=255, blank=True)
    takeover_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    takeover_by_label = models.CharField(max_length=150, blank=True)
    takeover_at = models.DateTimeField(null=True, blank=True)
    last_target = models.PositiveIntegerField(null=True, blank=True)
    last_decision = models.CharField(max_length=255, blank=True)
    last_decided_at = models.DateTimeField(null=True, blank=True)
    last_revision = models.CharField(
        max_length=300, blank=True, help_text="The pool's revision when last read: a change is a deployment."
    )

    # Worker health, judged by each controller tick (workloads.domain.health): whether the pool's
    # instances do any work while a backlog waits, and the evidence for the verdict.
    health = models.CharField(max_length=10, choices=PoolHealth.choices, default=PoolHealth.UNKNOWN)
    health_cause = models.CharField(max_length=16, choices=UnhealthyCause.choices, blank=True)
    health_detail = models.CharField(max_length=255, blank=True)
    health_since = models.DateTimeField(null=True, blank=True, help_text="When the current health verdict began.")
    health_checked_at = models.DateTimeField(null=True, blank=True)
    # Since when the pool has had instances and a backlog without a break: a pool that just got
    # work (or instances) has had no chance to report yet.
    busy_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.workload_class_id}: set {self.last_set_count}, seen {self.last_observed_count}"

    @property
    def is_unhealthy(self) -> bool:
        return self.health == PoolHealth.UNHEALTHY

    @property
    def is_drifted(self) -> bool:
        return self.drifted_since is not None
