"""Deployments of a class's worker code: recorded by CI (`POST /api/v1/classes/<slug>/deployments/`),
by an operator on the class page, or when the worker pool's revision changes. They mark the
class's charts."""

from django.conf import settings
from django.db import models


class DeploymentSource(models.TextChoices):
    API = "api", "API"
    UI = "ui", "Class page"
    REVISION = "revision", "Pool revision change"


class Deployment(models.Model):
    workload_class = models.ForeignKey("workloads.WorkloadClass", on_delete=models.CASCADE, related_name="deployments")
    deployed_at = models.DateTimeField()
    source = models.CharField(max_length=16, choices=DeploymentSource.choices)
    version = models.CharField(max_length=100, blank=True, help_text="What CI calls the release, e.g. v2.4.1.")
    commit = models.CharField(max_length=64, blank=True, help_text="The source commit (hex).")
    deployed_by = models.CharField(max_length=150, blank=True, help_text="Who deployed, as CI names them.")
    link = models.URLField(max_length=500, blank=True, help_text="The CI run or release page.")
    revision = models.CharField(max_length=300, blank=True, help_text="The worker pool's revision, when known.")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_by_label = models.CharField(max_length=150, help_text="The user or token that recorded it; 'system'.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-deployed_at", "-id"]
        indexes = [models.Index(fields=["workload_class", "-deployed_at"], name="deployment_class_at")]

    def __str__(self) -> str:
        return f"{self.workload_class_id}: {self.label} at {self.deployed_at:%Y-%m-%d %H:%M}"

    @property
    def label(self) -> str:
        """How a marker names it: the version, else the commit's first 12, else the revision."""
        return self.version or self.commit[:12] or self.revision.rsplit("/", 1)[-1] or f"#{self.pk}"
