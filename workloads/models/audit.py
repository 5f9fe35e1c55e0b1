from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditResult(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    DENIED = "denied", "Denied"


class AuditEvent(models.Model):
    """Who did what to which object, from where, with what result. Written only by services
    (`workloads.services.audit`), in the same transaction as the change it describes."""

    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too, so the trail survives the user's deletion; "system" for beat/automation.
    actor_label = models.CharField(max_length=150)
    token = models.ForeignKey("workloads.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    via = models.CharField(max_length=16, default="system", help_text="api, admin, ui, cli or system")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    workload_class_slug = models.CharField(max_length=48, blank=True, db_index=True)
    changes = models.JSONField(default=dict, blank=True, help_text="{field: [before, after]}")
    result = models.CharField(max_length=16, choices=AuditResult.choices, default=AuditResult.SUCCESS)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    extra = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_repr}"
