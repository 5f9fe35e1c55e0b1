"""Tables of the embedded `local` provider, the app `localcloud` (workloads/providers/local/): a
durable queue with Pub/Sub's semantics, worker pools run as local processes, and the worker reports
its metrics are computed from. Only that provider reads and writes them; nothing else should (a
contract in .importlinter checks it).

The tables were made by the `workloads` app, whose models these were, and keep its names
(`db_table`): migrations/0001_initial.py only moved them into this app's state.

Times are written by the provider from its own clock (no auto_now), so tests can build timelines.
"""

import json

from django.db import models
from django.db.models import Q


class BucketCountsField(models.Field):
    """A histogram's bucket counts (integers, one per bucket) in one column: a bigint[] on
    PostgreSQL, where the fold of the reports adds them up by subscript (a row per bucket had to be
    joined and pivoted: most of the fold's time), and a JSON array as text elsewhere (SQLite's
    json_extract reads it)."""

    description = "histogram bucket counts"

    def db_type(self, connection):
        return "bigint[]" if connection.vendor == "postgresql" else "text"

    def get_prep_value(self, value):
        return None if value is None else [int(count) for count in value]

    def get_db_prep_value(self, value, connection, prepared=False):
        counts = value if prepared else self.get_prep_value(value)
        if counts is None or connection.vendor == "postgresql":
            return counts
        return json.dumps(counts)

    def from_db_value(self, value, expression, connection):
        return json.loads(value) if isinstance(value, str) else value

    def to_python(self, value):
        return json.loads(value) if isinstance(value, str) else value


class LocalTopic(models.Model):
    name = models.CharField(max_length=300, unique=True, help_text="projects/P/topics/T")
    created_at = models.DateTimeField()

    class Meta:
        db_table = "workloads_localtopic"

    def __str__(self) -> str:
        return self.name


class LocalSubscription(models.Model):
    name = models.CharField(max_length=300, unique=True, help_text="projects/P/subscriptions/S")
    topic = models.ForeignKey(LocalTopic, on_delete=models.CASCADE, related_name="subscriptions")
    ack_deadline_seconds = models.PositiveIntegerField(default=10)
    # 0 = no dead-letter policy: the message is redelivered forever, as on Pub/Sub.
    max_delivery_attempts = models.PositiveIntegerField(default=0)
    dead_letter_topic = models.ForeignKey(
        LocalTopic, null=True, blank=True, on_delete=models.SET_NULL, related_name="dead_letter_sources"
    )
    min_backoff_seconds = models.PositiveIntegerField(default=0)
    max_backoff_seconds = models.PositiveIntegerField(default=0)
    ordering = models.BooleanField(default=False)
    retention_seconds = models.PositiveIntegerField(default=7 * 86400)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "workloads_localsubscription"

    def __str__(self) -> str:
        return self.name


class LocalMessage(models.Model):
    """One published message; its id (the primary key) is the message id and its publish order."""

    topic = models.ForeignKey(LocalTopic, on_delete=models.CASCADE, related_name="messages")
    data = models.BinaryField()
    attributes = models.JSONField(default=dict)
    ordering_key = models.CharField(max_length=1024, blank=True)
    published_at = models.DateTimeField()

    class Meta:
        db_table = "workloads_localmessage"

    def __str__(self) -> str:
        return f"message {self.pk}"


class LocalDelivery(models.Model):
    """A message as one subscription sees it: leased, nacked, acked (retained for seek) or moved to
    the dead-letter topic. Publish time and ordering key are copied here so leasing and the metrics
    never join the message table."""

    subscription = models.ForeignKey(LocalSubscription, on_delete=models.CASCADE, related_name="deliveries")
    message = models.ForeignKey(LocalMessage, on_delete=models.CASCADE, related_name="deliveries")
    ordering_key = models.CharField(max_length=1024, blank=True)
    published_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0, help_text="Deliveries so far (leases handed out).")
    visible_at = models.DateTimeField(help_text="Leasable from then on, unless acked.")
    lease_token = models.CharField(max_length=32, blank=True, help_text="Half of the current lease's ack id.")
    acked_at = models.DateTimeField(null=True, blank=True)
    dead_lettered = models.BooleanField(default=False)

    class Meta:
        db_table = "workloads_localdelivery"
        constraints = [models.UniqueConstraint(fields=["subscription", "message"], name="localdelivery_once")]
        indexes = [
            # Leasing walks the unacked deliveries in publish order; ordering keys look back within a key.
            models.Index(
                fields=["subscription", "message"], condition=Q(acked_at__isnull=True), name="localdelivery_unacked"
            ),
            models.Index(
                fields=["subscription", "ordering_key", "message"],
                condition=Q(acked_at__isnull=True),
                name="localdelivery_unacked_key",
            ),
            # Metrics reconstruct the backlog from publish and ack times; prune deletes by ack time.
            models.Index(fields=["subscription", "published_at"], name="localdelivery_published"),
            models.Index(fields=["subscription", "acked_at"], name="localdelivery_acked"),
        ]

    def __str__(self) -> str:
        return f"message {self.message_id} on subscription {self.subscription_id}"


class LocalSnapshot(models.Model):
    name = models.CharField(max_length=300, unique=True, help_text="projects/P/snapshots/S")
    subscription = models.ForeignKey(LocalSubscription, on_delete=models.CASCADE, related_name="snapshots")
    topic = models.ForeignKey(LocalTopic, on_delete=models.CASCADE, related_name="snapshots")
    created_at = models.DateTimeField()
    expire_time = models.DateTimeField()

    class Meta:
        db_table = "workloads_localsnapshot"

    def __str__(self) -> str:
        return self.name


class LocalSnapshotMessage(models.Model):
    """A message that was unacked in the snapshot's subscription when the snapshot was taken."""

    snapshot = models.ForeignKey(LocalSnapshot, on_delete=models.CASCADE, related_name="entries")
    message = models.ForeignKey(LocalMessage, on_delete=models.CASCADE, related_name="snapshot_entries")

    class Meta:
        db_table = "workloads_localsnapshotmessage"
        constraints = [models.UniqueConstraint(fields=["snapshot", "message"], name="localsnapshotmessage_once")]

    def __str__(self) -> str:
        return f"message {self.message_id} in snapshot {self.snapshot_id}"


class LocalWorkerPool(models.Model):
    """A class's pool of local `runworker` processes; `manage.py runfleet` keeps it at its count."""

    name = models.CharField(max_length=300, unique=True, help_text="projects/P/locations/L/workerPools/W")
    slug = models.CharField(max_length=48, db_index=True, help_text="The workload class the workers run.")
    instance_count = models.PositiveIntegerField(default=0)
    generation = models.PositiveBigIntegerField(default=1)
    last_modifier = models.CharField(max_length=150, blank=True)
    update_time = models.DateTimeField()
    created_at = models.DateTimeField()
    # Written by runfleet when a worker exits on its own: the evidence of a crash loop. The count
    # is of exits in a row, each after less than fleet.HEALTHY_AFTER_SECONDS of life.
    exits_in_row = models.PositiveIntegerField(default=0)
    last_exit_at = models.DateTimeField(null=True, blank=True)
    last_exit_code = models.IntegerField(null=True, blank=True)
    # Cloud Run's revisions, simulated: each start of runfleet runs the code anew, so it gives
    # every pool a new revision (a deployment, as a new revision on Cloud Run is).
    revision = models.CharField(max_length=100, blank=True)

    class Meta:
        db_table = "workloads_localworkerpool"

    def __str__(self) -> str:
        return self.name


class LocalPoolChange(models.Model):
    """Every instance count a pool has had and since when: the instance-count metric's history."""

    pool = models.ForeignKey(LocalWorkerPool, on_delete=models.CASCADE, related_name="changes")
    instance_count = models.PositiveIntegerField()
    generation = models.PositiveBigIntegerField()
    changed_at = models.DateTimeField()
    modifier = models.CharField(max_length=150, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        db_table = "workloads_localpoolchange"
        indexes = [models.Index(fields=["pool", "changed_at"], name="localpoolchange_pool_time")]

    def __str__(self) -> str:
        return f"{self.instance_count} instances from {self.changed_at:%Y-%m-%d %H:%M:%S}"


class LocalWorkerReport(models.Model):
    """What one worker instance observed in one interval (Metrics.write_worker_report)."""

    slug = models.CharField(max_length=48)
    worker_pool = models.CharField(max_length=300, blank=True)
    instance_id = models.CharField(max_length=200, blank=True)
    interval_start = models.DateTimeField()
    interval_end = models.DateTimeField()
    # The interval's end in epoch milliseconds: integer division by the step groups reports into
    # steps with the same SQL on PostgreSQL and SQLite.
    interval_end_ms = models.BigIntegerField()
    completed = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    records = models.PositiveBigIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)
    latency_count = models.PositiveBigIntegerField(default=0)
    latency_sum = models.FloatField(default=0.0)
    # LATENCY_BUCKET_BOUNDS + 1 counts (workloads/providers/base.py); [] in rows from before the
    # column whose report had no latency bucket rows.
    latency_buckets = BucketCountsField(default=list)

    class Meta:
        db_table = "workloads_localworkerreport"
        indexes = [models.Index(fields=["slug", "interval_end_ms"], name="localworkerreport_slug_end")]

    def __str__(self) -> str:
        return f"{self.slug} report ending {self.interval_end:%Y-%m-%d %H:%M:%S}"
