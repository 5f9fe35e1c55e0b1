from django.db import models


class IdempotencyRecord(models.Model):
    """One accepted unit of work per (class, idempotency key) within the class's dedup TTL.

    The unique constraint is the deduplication: concurrent requests with one key serialize on it,
    and the loser reads the winner's receipt (never check-then-insert)."""

    workload_class = models.ForeignKey("workloads.WorkloadClass", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    payload_fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the normalized payload")
    message_id = models.CharField(max_length=128, blank=True)
    ordering_key = models.CharField(max_length=1024, blank=True)  # Pub/Sub allows 1024 bytes
    trace_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workload_class", "key"], name="one_idempotency_key_per_class"),
        ]

    def __str__(self) -> str:
        return f"{self.workload_class_id}:{self.key}"
