"""Every change the control plane makes to the cloud is an Action, carried out in steps.

An action is planned once into ActionSteps (one per pool, per dead letter, ...). Each step's
result is recorded before the next one starts, so a worker that crashes mid-way leaves a row the
next worker resumes without repeating finished steps.
"""

from django.conf import settings
from django.db import models


class ActionKind(models.TextChoices):
    SCALE = "scale", "Scale"
    PAUSE = "pause", "Pause"
    OVERRIDE = "override", "Hold at a count"
    RESUME = "resume", "Resume"
    INCIDENT_ENTER = "incident_enter", "Enter incident mode"
    INCIDENT_EXIT = "incident_exit", "Exit incident mode"
    REPLAY = "replay", "Replay dead letters"
    DISCARD = "discard", "Discard dead letters"
    SEEK = "seek", "Seek subscription"
    SNAPSHOT = "snapshot", "Snapshot subscription"
    ENSURE_RESOURCES = "ensure_resources", "Ensure cloud resources"
    MIGRATION_STEP = "migration_step", "Migration step"
    CONTROL_SIGNAL = "control_signal", "Send a control signal"
    DELETE_RESOURCES = "delete_resources", "Delete cloud resources"
    BACKFILL = "backfill", "Backfill from Cloud Monitoring"


class ActionState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    PARTIALLY_FAILED = "partially_failed", "Partially failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_ACTION_STATES = (
    ActionState.SUCCEEDED,
    ActionState.FAILED,
    ActionState.PARTIALLY_FAILED,
    ActionState.CANCELLED,
)


class Action(models.Model):
    kind = models.CharField(max_length=32, choices=ActionKind.choices)
    name = models.CharField(max_length=120, blank=True, help_text="Optional label, e.g. a replay's name.")
    workload_class = models.ForeignKey(
        "workloads.WorkloadClass", null=True, blank=True, on_delete=models.SET_NULL, related_name="actions"
    )
    target = models.CharField(max_length=255, blank=True, help_text="What it acts on, for people.")
    parameters = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=150, default="system")
    state = models.CharField(max_length=20, choices=ActionState.choices, default=ActionState.PENDING, db_index=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_failed = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    planned = models.BooleanField(default=False, help_text="Steps have been written.")
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker claimed it.")
    claimed_by = models.CharField(max_length=120, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Do not start before (delayed triage).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workload_class", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_ACTION_STATES

    @property
    def percent_done(self) -> int:
        if not self.progress_total:
            return 100 if self.is_final else 0
        return int(100 * (self.progress_done + self.progress_failed) / self.progress_total)


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class ActionStep(models.Model):
    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    key = models.CharField(max_length=255, help_text="What this step acts on (a pool, a message id...).")
    payload = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=StepState.choices, default=StepState.PENDING)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["action", "position"]
        constraints = [
            models.UniqueConstraint(fields=["action", "position"], name="unique_step_position"),
        ]
        indexes = [models.Index(fields=["action", "state", "position"])]

    def __str__(self) -> str:
        return f"{self.action_id}/{self.position} {self.key} ({self.state})"
