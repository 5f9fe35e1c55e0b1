"""Telemetry: per-class metric rollups, poll runs, SLO status snapshots and burn-rate alerts.

Dashboards and the API read these rows, never the provider: their cost grows with the number of
classes and the points shown, not with traffic or history.
"""

from datetime import timedelta

from django.db import models
from django.db.models import Q

from workloads.models.classes import Slo, WorkloadClass


class Resolution(models.TextChoices):
    MINUTE = "minute", "Minute"
    HOUR = "hour", "Hour"


RESOLUTION_SECONDS = {Resolution.MINUTE: 60, Resolution.HOUR: 3600}


class MetricRollup(models.Model):
    """One class's metrics for one minute (or one hour after downsampling).

    Gauges are set, never added: a re-poll of an overlapping window replaces the minute's values
    with the provider's current ones, and counters hold the step's totals, so polling a minute
    twice never counts it twice. An hourly row is always recomputed from its minutes.

    The `*_good` columns are the class's SLO good events, judged when the row is written against
    the thresholds recorded in ClassTelemetry (a class has at most one SLO per kind), so SLO
    windows are plain SQL sums; when a threshold changes they are recomputed from the histogram
    and the ages kept here.
    """

    workload_class = models.ForeignKey(WorkloadClass, on_delete=models.CASCADE, related_name="metric_rollups")
    resolution = models.CharField(max_length=8, choices=Resolution.choices)
    bucket_start = models.DateTimeField()

    # Gauges: the step's maximum for ages and backlogs (the worst moment is what on-call needs),
    # the mean for instances. NULL = no sample (a gap, not a zero).
    oldest_unacked_age_seconds = models.FloatField(null=True, blank=True)
    backlog = models.FloatField(null=True, blank=True)
    dead_letter_backlog = models.FloatField(null=True, blank=True)
    # How long the oldest dead letter has waited in the dead-letter subscription (not mirrored yet).
    dead_letter_oldest_age_seconds = models.FloatField(null=True, blank=True)
    instances = models.FloatField(null=True, blank=True)
    instance_seconds = models.FloatField(default=0)

    # Counters: totals for the bucket.
    completed = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    records = models.BigIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)

    # Completion latency over LATENCY_BUCKET_BOUNDS ([] = no completions measured).
    latency_buckets = models.JSONField(default=list, blank=True)
    latency_count = models.BigIntegerField(default=0)
    latency_sum = models.FloatField(default=0)
    # An observed runtime's own figures (its Cloud Monitoring metrics; workloads/runtimes.py):
    # executions and the errors among them, and execution (or request) latency over
    # LATENCY_BUCKET_BOUNDS. Apart from the worker kit's completions and lead time above, which
    # measure something else (a unit of work, from ingestion) and may arrive for the same class.
    # Its instance time lands in `instances` / `instance_seconds`, like a pool's.
    executions = models.BigIntegerField(default=0)
    execution_errors = models.BigIntegerField(default=0)
    runtime_latency_buckets = models.JSONField(default=list, blank=True)
    runtime_latency_count = models.BigIntegerField(default=0)
    runtime_latency_sum = models.FloatField(default=0)

    # Hourly rows only: their minutes' oldest-unacked ages, sorted, so queue-age good minutes can
    # be recounted exactly against a new threshold after the minutes are gone (a histogram would
    # blur the minutes that sit near the threshold).
    queue_ages = models.JSONField(default=list, blank=True)

    # SLO events. Queue age: minutes with a sample, and those at or under the threshold.
    # Latency: completions at or under the threshold (interpolated in the histogram bucket that
    # holds it; out of latency_count).
    queue_age_minutes = models.PositiveIntegerField(default=0)
    queue_age_good = models.PositiveIntegerField(default=0)
    latency_good = models.FloatField(default=0)

    fetched_at = models.DateTimeField(help_text="When the provider was last asked for this bucket.")
    newest_sample_age_seconds = models.FloatField(
        null=True, blank=True, help_text="At fetch time, how old the class's newest sample was (monitoring lag)."
    )

    class Meta:
        # No default ordering: it would join the class table into every aggregate over rollups.
        constraints = [
            models.UniqueConstraint(
                fields=["workload_class", "resolution", "bucket_start"], name="one_rollup_per_class_bucket"
            )
        ]
        indexes = [models.Index(fields=["resolution", "bucket_start"], name="rollup_resolution_start")]

    def __str__(self) -> str:
        return f"{self.workload_class_id}:{self.resolution}:{self.bucket_start:%Y-%m-%dT%H:%M}"

    @property
    def newest_sample_at(self):
        if self.newest_sample_age_seconds is None:
            return None
        return self.fetched_at - timedelta(seconds=self.newest_sample_age_seconds)


class ClassTelemetry(models.Model):
    """One class's latest telemetry, rewritten by every poll that brings it data: freshness, the
    live values the fleet overview shows, and the SLO thresholds its rollups' good-event columns
    were computed with. The overview reads one of these per class, never the rollups."""

    workload_class = models.OneToOneField(
        WorkloadClass, on_delete=models.CASCADE, primary_key=True, related_name="telemetry"
    )
    fetched_at = models.DateTimeField(help_text="The last poll that brought this class data.")
    newest_sample_at = models.DateTimeField(null=True, blank=True)
    # The latest sample of each gauge within the last hour (None when there was none).
    oldest_unacked_age_seconds = models.FloatField(null=True, blank=True)
    backlog = models.FloatField(null=True, blank=True)
    dead_letter_backlog = models.FloatField(null=True, blank=True)
    dead_letter_oldest_age_seconds = models.FloatField(null=True, blank=True)
    instances = models.FloatField(null=True, blank=True)
    latency_p95_seconds = models.FloatField(null=True, blank=True, help_text="Over the last hour.")
    completed_last_hour = models.BigIntegerField(default=0)
    failed_last_hour = models.BigIntegerField(default=0)
    queue_age_threshold_seconds = models.FloatField(null=True, blank=True)
    latency_threshold_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "class telemetry"

    def __str__(self) -> str:
        return f"{self.workload_class_id}: {self.newest_sample_at}"


class PollRun(models.Model):
    """One provider call for one metric (for all classes at once), with its outcome."""

    metric = models.CharField(max_length=32)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    classes = models.PositiveIntegerField(default=0, help_text="Classes asked for.")
    points = models.PositiveIntegerField(default=0, help_text="Points received.")

    class Meta:
        ordering = ["-started_at", "metric"]
        indexes = [models.Index(fields=["metric", "-started_at"], name="pollrun_metric_started")]

    def __str__(self) -> str:
        return f"{self.metric}@{self.started_at:%Y-%m-%dT%H:%M} {'ok' if self.ok else 'failed'}"


class SloStatus(models.Model):
    """The latest evaluation of one SLO: attainment and budget over its window and the burn rate
    in each alert window. Written by the evaluation tick; read by dashboards and the API."""

    slo = models.OneToOneField(Slo, on_delete=models.CASCADE, primary_key=True, related_name="status")
    evaluated_at = models.DateTimeField()
    window_start = models.DateTimeField()
    good = models.FloatField(default=0)
    total = models.FloatField(default=0)
    attainment = models.FloatField(null=True, blank=True, help_text="good / total (a fraction); NULL without traffic.")
    met = models.BooleanField(default=True)
    budget_allowed = models.FloatField(default=0, help_text="Bad events (or minutes) the budget allows.")
    budget_consumed = models.FloatField(default=0)
    budget_remaining = models.FloatField(default=0)
    budget_remaining_percent = models.FloatField(default=100)
    exhaustion_seconds = models.FloatField(
        null=True, blank=True, help_text="Time until the budget runs out at the last hour's burn rate."
    )
    windows = models.JSONField(default=dict, help_text='{"5m": {"good": g, "total": t, "burn_rate": b}, ...}')
    # Rules whose windows both burn above the factor but whose long window saw fewer events than
    # the SLO's min_traffic, so no alert opened: [{"rule", "severity", "events", "min_traffic",
    # "burn_rate"}]. Shown as "guarded: 19 of 20 events" so a red burn without an alert explains itself.
    guarded = models.JSONField(default=list, blank=True)
    attempt_failure_ratio = models.FloatField(
        null=True,
        blank=True,
        help_text="Failed attempts / attempts over the window (retries included); NULL without attempts. "
        "Its own figure: the success ratio counts each unit of work once, by its final outcome.",
    )

    class Meta:
        verbose_name_plural = "SLO statuses"

    def __str__(self) -> str:
        return f"{self.slo}: {self.budget_remaining_percent:.1f}% budget left"


class AlertSeverity(models.TextChoices):
    PAGE = "page", "Page"
    TICKET = "ticket", "Ticket"


class SloAlert(models.Model):
    """A burn-rate alert: opened when both windows of a rule burn too fast, resolved when the
    short window calms down. At most one open alert per SLO and rule."""

    slo = models.ForeignKey(Slo, on_delete=models.CASCADE, related_name="alerts")
    rule = models.CharField(max_length=32)
    severity = models.CharField(max_length=8, choices=AlertSeverity.choices)
    factor = models.FloatField()
    long_window_seconds = models.PositiveIntegerField()
    short_window_seconds = models.PositiveIntegerField()
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    opened_long_burn_rate = models.FloatField()
    opened_short_burn_rate = models.FloatField()
    last_long_burn_rate = models.FloatField()
    last_short_burn_rate = models.FloatField()
    peak_short_burn_rate = models.FloatField()
    last_evaluated_at = models.DateTimeField()
    incident = models.ForeignKey(
        "workloads.SloIncident", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["slo", "rule"], condition=Q(resolved_at__isnull=True), name="one_open_alert_per_slo_rule"
            )
        ]
        indexes = [models.Index(fields=["resolved_at", "-opened_at"], name="sloalert_resolved_opened")]

    def __str__(self) -> str:
        state = "open" if self.resolved_at is None else "resolved"
        return f"{self.slo} {self.rule} ({state})"

    @property
    def is_active(self) -> bool:
        return self.resolved_at is None


class ClassCounters(models.Model):
    """One class's running totals since it was created, for `/metrics`: Prometheus counters must
    never go down, while rollups are re-polled, folded into hours and pruned. Each poll adds what
    its minutes gained over the values they had (a minute re-polled with the same values adds
    nothing); each dead-letter sync adds the dead letters it mirrored. One row per class."""

    workload_class = models.OneToOneField(
        WorkloadClass, on_delete=models.CASCADE, primary_key=True, related_name="counters"
    )
    completed = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    dead_lettered = models.BigIntegerField(default=0)
    records = models.BigIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)
    instance_seconds = models.FloatField(default=0)
    # Cost at the rates in force when each minute was polled, in `cost_currency` (a change of
    # currency starts a new total).
    cost = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    cost_currency = models.CharField(max_length=3, blank=True)
    # Cumulative completion-latency counts per LATENCY_BUCKET_BOUNDS bucket ([] = none yet).
    latency_buckets = models.JSONField(default=list, blank=True)
    latency_count = models.BigIntegerField(default=0)
    latency_sum = models.FloatField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "class counters"

    def __str__(self) -> str:
        return f"{self.workload_class_id}: {self.completed} completed"
