"""The escape hatch's control signal: how pause, resume and incident mode reach a runtime the
control plane does not run (any observed runtime, a `custom` one above all). The runtime receives a
signed webhook and acknowledges it through the API; the screen shows sent, acknowledged or silent."""

from django.db import models


class SignalKind(models.TextChoices):
    PAUSE = "pause", "Pause"
    RESUME = "resume", "Resume"


class ControlSignal(models.Model):
    workload_class = models.ForeignKey(
        "workloads.WorkloadClass", on_delete=models.CASCADE, related_name="control_signals"
    )
    kind = models.CharField(max_length=8, choices=SignalKind.choices)
    reason = models.TextField(blank=True)
    incident = models.ForeignKey(
        "workloads.IncidentMode", null=True, blank=True, on_delete=models.SET_NULL, related_name="control_signals"
    )
    requested_by_label = models.CharField(max_length=150, default="system")
    action = models.ForeignKey("workloads.Action", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the runtime's endpoint answered 2xx.")
    last_error = models.TextField(blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by_label = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workload_class", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.workload_class_id} ({self.pk})"
