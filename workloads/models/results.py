from django.db import models


class WorkOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (retry scheduled)"
    TIMED_OUT = "timed_out", "Timed out (retry scheduled)"
    DEAD_LETTERED = "dead_lettered", "Dead-lettered"
    SKIPPED_DUPLICATE = "skipped_duplicate", "Skipped (already completed)"


class WorkResult(models.Model):
    """One delivery of a unit of work as the worker kit settled it: written in the same transaction
    that decides the message's fate, before the message is acked or nacked.

    At most one live `succeeded` row per (class, idempotency key): that constraint is the result
    writer's idempotency. When a key completes again after the class's dedup TTL (ingestion accepts
    the key anew then), the older row is marked `superseded` so the new completion can be recorded.
    """

    workload_class = models.ForeignKey("workloads.WorkloadClass", on_delete=models.CASCADE, related_name="+")
    idempotency_key = models.CharField(max_length=255)
    message_id = models.CharField(max_length=128)
    outcome = models.CharField(max_length=24, choices=WorkOutcome.choices)
    attempts = models.PositiveIntegerField(help_text="The delivery attempt this row settles (1 = first).")
    latency_seconds = models.FloatField(
        null=True, help_text="From ingestion (cp-ingested-at) to this settlement; null when unknown."
    )
    records = models.PositiveBigIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)
    cost_units = models.DecimalField(
        max_digits=20, decimal_places=12, default=0, help_text="Records and tokens at the class's rates."
    )
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.CharField(max_length=1000, blank=True)
    error_signature = models.CharField(max_length=16, blank=True, db_index=True)
    worker_instance = models.CharField(max_length=200, blank=True)
    superseded = models.BooleanField(default=False)
    completed_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workload_class", "idempotency_key"],
                condition=models.Q(outcome="succeeded", superseded=False),
                name="one_live_success_per_key",
            ),
        ]
        indexes = [
            models.Index(fields=["workload_class", "idempotency_key"], name="workresult_class_key"),
            models.Index(fields=["workload_class", "completed_at"], name="workresult_class_completed"),
        ]

    def __str__(self) -> str:
        return f"{self.workload_class_id}:{self.idempotency_key} {self.outcome}"
