"""The registry: workload classes and the policies attached to them."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from workloads import validation
from workloads.domain.scheduling import InstanceBounds, baseline_bounds
from workloads.models.environments import Environment, default_environment_pk
from workloads.runtimes import Runtime, is_managed

SLUG_VALIDATOR = RegexValidator(
    r"^[a-z][a-z0-9-]{1,46}[a-z0-9]$",
    "Use 3-48 lower-case letters, digits and hyphens, starting with a letter: the slug names the "
    "class's Pub/Sub topics and worker pool, so it never changes after creation.",
    code="invalid_slug",
)
MAX_INSTANCES_LIMIT = 1000


class Tier(models.TextChoices):
    CRITICAL = "critical", "Critical"
    STANDARD = "standard", "Standard"
    DEFERRABLE = "deferrable", "Deferrable (paused in incident mode)"


class TimeoutTier(models.TextChoices):
    INTERACTIVE = "interactive", "Interactive (30 s)"
    STANDARD = "standard", "Standard (5 min)"
    BATCH = "batch", "Batch (30 min)"
    LONG = "long", "Long (60 min)"
    CUSTOM = "custom", "Custom"


TIMEOUT_TIER_SECONDS = {
    TimeoutTier.INTERACTIVE: 30,
    TimeoutTier.STANDARD: 300,
    TimeoutTier.BATCH: 1800,
    TimeoutTier.LONG: 3600,
}
MAX_CUSTOM_TIMEOUT_SECONDS = 3600


class CostRates(models.Model):
    """A price sheet that classes point at. Rates are per unit, in `currency`."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[RegexValidator(r"^[A-Z]{3}$", "Use an ISO 4217 code like USD or EUR.")],
    )
    vcpu_second = models.DecimalField(
        max_digits=18,
        decimal_places=12,
        default=Decimal("0"),
        validators=[MinValueValidator(0)],
        help_text="Price per vCPU-second of worker-pool instance time.",
    )
    gib_second = models.DecimalField(
        max_digits=18,
        decimal_places=12,
        default=Decimal("0"),
        validators=[MinValueValidator(0)],
        help_text="Price per GiB-second of worker-pool instance memory.",
    )
    per_record = models.DecimalField(
        max_digits=18,
        decimal_places=12,
        default=Decimal("0"),
        validators=[MinValueValidator(0)],
        help_text="Price per record a worker reports (third-party APIs, storage writes...).",
    )
    per_1k_tokens = models.DecimalField(
        max_digits=18,
        decimal_places=12,
        default=Decimal("0"),
        validators=[MinValueValidator(0)],
        help_text="Price per 1,000 model tokens a worker reports.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "cost rates"

    def __str__(self) -> str:
        return self.name


class WorkloadClass(models.Model):
    slug = models.CharField(max_length=48, unique=True, validators=[SLUG_VALIDATOR])
    name = models.CharField(max_length=120)
    owner_team = models.CharField(max_length=80)
    description = models.TextField(blank=True)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STANDARD)
    # Which projects and regions its resources may name, the monitoring scope its metrics are
    # read through, and whose per-environment roles apply to it.
    # Blank means the default environment (DEFAULT_ENVIRONMENT), filled in when the class is cleaned
    # or saved, not on instantiation: building an unsaved class never touches the database.
    environment = models.ForeignKey(
        Environment,
        on_delete=models.PROTECT,
        related_name="workload_classes",
        blank=True,
        help_text="Blank: the default environment (DEFAULT_ENVIRONMENT).",
    )
    runbook_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Shown on its alerts and in every notification (default: docs/runbook.md).",
    )

    # Where it runs: a worker pool we manage, or a runtime we only observe (workloads/runtimes.py)
    runtime = models.CharField(
        max_length=24,
        choices=Runtime.choices,
        default=Runtime.WORKER_POOL,
        help_text="worker_pool is provisioned and scaled by the control plane; the others are observed only.",
    )
    runtime_resource = models.CharField(
        max_length=300,
        blank=True,
        help_text="What the observed runtime is called: a Cloud Run service or job, a function, "
        "namespace/workload on GKE, an instance group, or the Celery task name.",
    )

    # The escape hatch: where pause, resume and incident mode reach an observed runtime (a signed
    # webhook the runtime acknowledges through the API; workloads/services/runtime_control.py).
    control_webhook_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Observed runtimes: receives signed pause and resume signals (docs/migration.md).",
    )

    # A migration plan's switch (workloads/models/migration.py): this share of the ingested events,
    # by a stable hash of the idempotency key, goes to `route_to`'s topic instead of this class's.
    # Changed by a plan's steps only (never in a form): editable=False keeps them out of the admin.
    route_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    route_percent = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)], editable=False)

    # Execution
    timeout_tier = models.CharField(max_length=16, choices=TimeoutTier.choices, default=TimeoutTier.STANDARD)
    timeout_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CUSTOM_TIMEOUT_SECONDS)],
        help_text="Only for the custom timeout tier: 1 to 3600 seconds.",
    )
    max_concurrency = models.PositiveIntegerField(
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Messages one worker instance processes at once (flow control).",
    )

    # Retry policy (Pub/Sub's ranges)
    max_delivery_attempts = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(5), MaxValueValidator(100)],
        help_text="Deliveries before a message is dead-lettered (Pub/Sub allows 5 to 100).",
    )
    min_backoff_seconds = models.PositiveIntegerField(
        default=10,
        validators=[MaxValueValidator(600)],
    )
    max_backoff_seconds = models.PositiveIntegerField(
        default=600,
        validators=[MaxValueValidator(600)],
    )
    backoff_jitter = models.BooleanField(default=True, help_text="Full jitter on retry delays.")
    replay_limit = models.PositiveIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Times one message may be replayed from the dead-letter queue (loop guard).",
    )

    # Payload contract
    payload_schema = models.JSONField(help_text="JSON Schema of one event's payload (an object).")
    schema_version = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    idempotency_key_template = models.CharField(
        max_length=255, help_text="Built from required top-level fields, e.g. {tenant_id}:{document_id}."
    )
    dedup_ttl_seconds = models.PositiveIntegerField(
        default=86400,
        validators=[MinValueValidator(60), MaxValueValidator(7 * 86400)],
        help_text="How long an idempotency key deduplicates: 1 minute to 7 days.",
    )
    ordering_key_template = models.CharField(
        max_length=255,
        blank=True,
        help_text="Empty means no ordering (preferred: order only where truly needed).",
    )

    # Capacity
    min_instances = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(MAX_INSTANCES_LIMIT)])
    max_instances = models.PositiveIntegerField(default=10, validators=[MaxValueValidator(MAX_INSTANCES_LIMIT)])
    throughput_per_instance = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.001)],
        help_text="Messages per second one instance completes; the scaler sizes pools with it.",
    )
    drain_target_seconds = models.PositiveIntegerField(
        default=300,
        validators=[MinValueValidator(10), MaxValueValidator(86400)],
        help_text="The scaler sizes the pool to clear the backlog within this time.",
    )
    vcpu_per_instance = models.DecimalField(
        max_digits=6, decimal_places=3, default=Decimal("1"), validators=[MinValueValidator(Decimal("0.001"))]
    )
    memory_gib_per_instance = models.DecimalField(
        max_digits=8, decimal_places=3, default=Decimal("0.5"), validators=[MinValueValidator(Decimal("0.001"))]
    )
    cost_rates = models.ForeignKey(
        CostRates, null=True, blank=True, on_delete=models.PROTECT, related_name="workload_classes"
    )

    # Behaviour under incident mode
    shed_load_when_paused = models.BooleanField(
        default=False,
        help_text="Refuse ingestion (503) while paused; by default events queue up and wait.",
    )

    # Google Cloud resources (blank = derived from the slug when saved)
    topic = models.CharField(max_length=300, blank=True, validators=[validation.validate_topic_name])
    subscription = models.CharField(max_length=300, blank=True, validators=[validation.validate_subscription_name])
    dead_letter_topic = models.CharField(max_length=300, blank=True, validators=[validation.validate_topic_name])
    dead_letter_subscription = models.CharField(
        max_length=300, blank=True, validators=[validation.validate_subscription_name]
    )
    completion_topic = models.CharField(
        max_length=300,
        blank=True,
        validators=[validation.validate_topic_name],
        help_text="Optional: where the result writer publishes completion events.",
    )
    worker_pool = models.CharField(max_length=300, blank=True, validators=[validation.validate_worker_pool_name])
    message_retention_seconds = models.PositiveIntegerField(
        default=7 * 86400,
        validators=[MinValueValidator(600), MaxValueValidator(7 * 86400)],
        help_text="Subscription retention: 10 minutes to 7 days; a pause must not outlast it.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "workload classes"

    def __str__(self) -> str:
        return self.slug

    def save(self, *args, **kwargs):
        if self.environment_id is None:
            self.environment_id = default_environment_pk(kwargs.get("using") or self._state.db or "default")
        super().save(*args, **kwargs)

    # --- facts about this class ---------------------------------------------------------------
    @property
    def timeout(self) -> timedelta:
        if self.timeout_tier == TimeoutTier.CUSTOM:
            return timedelta(seconds=self.timeout_seconds or 0)
        return timedelta(seconds=TIMEOUT_TIER_SECONDS[TimeoutTier(self.timeout_tier)])

    @property
    def ack_deadline_seconds(self) -> int:
        # Pub/Sub allows 10..600 s; leases are extended by the client beyond that for long tiers.
        return max(10, min(600, int(self.timeout.total_seconds())))

    @property
    def baseline_bounds(self) -> InstanceBounds:
        """Its own min and max instances, as the schedule rules take them (workloads/domain/scheduling.py)."""
        return baseline_bounds(self.min_instances, self.max_instances)

    @property
    def is_deferrable(self) -> bool:
        return self.tier == Tier.DEFERRABLE

    @property
    def runs_on_worker_pool(self) -> bool:
        """Provisioned, scaled and paused by us; observed runtimes never are."""
        return is_managed(self.runtime)

    def default_resource_names(self, *, project: str, region: str) -> dict[str, str]:
        return {
            "topic": f"projects/{project}/topics/{self.slug}",
            "subscription": f"projects/{project}/subscriptions/{self.slug}-worker",
            "dead_letter_topic": f"projects/{project}/topics/{self.slug}-dead-letter",
            "dead_letter_subscription": f"projects/{project}/subscriptions/{self.slug}-dead-letter",
            "worker_pool": f"projects/{project}/locations/{region}/workerPools/{self.slug}",
        }

    def fill_default_resource_names(self) -> None:
        if not self.slug or SLUG_VALIDATOR.regex.match(self.slug) is None:
            return
        project, region = settings.GOOGLE_CLOUD_PROJECT, settings.GOOGLE_CLOUD_REGION
        environment = self._environment_or_none()
        if environment is not None and environment.projects and environment.regions:
            project, region = environment.projects[0], environment.regions[0]
        defaults = self.default_resource_names(project=project, region=region)
        for field, value in defaults.items():
            if not getattr(self, field):
                setattr(self, field, value)

    def _environment_or_none(self) -> Environment | None:
        if self.environment_id is None:
            return None
        return self.environment

    # --- validation (the one place the admin, the API and the UI share) ------------------------
    def clean_fields(self, exclude=None):
        if self.environment_id is None:
            self.environment_id = default_environment_pk(self._state.db or "default")
        # Derived names are filled before field validation so they are validated like typed ones.
        self.fill_default_resource_names()
        super().clean_fields(exclude=exclude)

    def clean(self) -> None:
        errors: dict[str, list] = {}

        def add(field, error):
            errors.setdefault(field, []).append(error)

        if self.runtime == Runtime.CELERY:
            if not self.runtime_resource:
                add("runtime_resource", "Name the Celery task the class's events are sent to (e.g. legacy.process).")
            elif (
                WorkloadClass.objects.filter(runtime=Runtime.CELERY, runtime_resource=self.runtime_resource)
                .exclude(pk=self.pk)
                .exists()
            ):
                # Task events name the task, not the class: one task can be observed for one class only.
                add("runtime_resource", f"Another Celery class already runs the task {self.runtime_resource}.")
        if self.timeout_tier == TimeoutTier.CUSTOM and not self.timeout_seconds:
            add("timeout_seconds", "Set timeout_seconds (1 to 3600) for the custom timeout tier.")
        if self.timeout_tier != TimeoutTier.CUSTOM and self.timeout_seconds:
            add("timeout_seconds", "timeout_seconds is only used with the custom timeout tier; leave it empty.")
        if (
            self.min_backoff_seconds is not None
            and self.max_backoff_seconds is not None
            and self.min_backoff_seconds > self.max_backoff_seconds
        ):
            add("min_backoff_seconds", "The minimum backoff must not exceed the maximum backoff.")
        if (
            self.min_instances is not None
            and self.max_instances is not None
            and self.min_instances > self.max_instances
        ):
            add("min_instances", "The minimum instance count must not exceed the maximum.")

        schema_ok = True
        try:
            validation.validate_payload_schema(self.payload_schema)
        except ValidationError as exc:
            schema_ok = False
            add("payload_schema", exc)
        if schema_ok:
            for field, label, required in (
                ("idempotency_key_template", "idempotency key template", True),
                ("ordering_key_template", "ordering key template", False),
            ):
                template = getattr(self, field)
                if template or required:
                    try:
                        validation.validate_key_template(
                            template or "", self.payload_schema, label=label, require_placeholder=required
                        )
                    except ValidationError as exc:
                        add(field, exc)

        environment = self._environment_or_none()
        if environment is not None:
            for field, problem in environment_name_problems(self, environment):
                add(field, problem)
        names = [self.topic, self.dead_letter_topic, self.completion_topic]
        if self.topic and self.topic in (self.dead_letter_topic, self.completion_topic):
            add("dead_letter_topic", "The dead-letter and completion topics must differ from the class topic.")
        elif len([n for n in names if n]) != len({n for n in names if n}):
            add("completion_topic", "The completion topic must differ from the dead-letter topic.")
        if self.subscription and self.subscription == self.dead_letter_subscription:
            add("dead_letter_subscription", "The dead-letter subscription must differ from the worker subscription.")
        if errors:
            raise ValidationError(errors)


_NAME_FIELDS = ("topic", "subscription", "dead_letter_topic", "dead_letter_subscription", "completion_topic")


def environment_name_problems(workload_class: WorkloadClass, environment: Environment) -> list[tuple[str, str]]:
    """Resource names outside the environment: a project it does not name, a region it does not run
    in. A staging class must not publish to prod's topics."""
    problems = []
    for field in (*_NAME_FIELDS, "worker_pool"):
        value = getattr(workload_class, field)
        if not value or not value.startswith("projects/"):
            continue
        parts = value.split("/")
        project = parts[1]
        if project not in environment.projects:
            problems.append(
                (
                    field,
                    f"The project {project} is not one of environment {environment.slug}'s projects "
                    f"({', '.join(environment.projects)}).",
                )
            )
        elif field == "worker_pool" and len(parts) > 3 and parts[3] not in environment.regions:
            problems.append(
                (
                    field,
                    f"The region {parts[3]} is not one of environment {environment.slug}'s regions "
                    f"({', '.join(environment.regions)}).",
                )
            )
    return problems


class SloKind(models.TextChoices):
    QUEUE_AGE = "queue_age", "Queue age (oldest unacked message)"
    COMPLETION_LATENCY = "completion_latency", "Completion latency"
    SUCCESS_RATIO = "success_ratio", "Success ratio"


class Slo(models.Model):
    workload_class = models.ForeignKey(WorkloadClass, on_delete=models.CASCADE, related_name="slos")
    kind = models.CharField(max_length=24, choices=SloKind.choices)
    percentile = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("50")), MaxValueValidator(Decimal("99.99"))],
        help_text="For queue age and latency: the percentile that must stay under the threshold.",
    )
    threshold_seconds = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text="For queue age and latency: the threshold in seconds.",
    )
    target_percent = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        help_text="Share of good events (or minutes) over the window, strictly between 0 and 100.",
    )
    window_days = models.PositiveIntegerField(default=28, validators=[MinValueValidator(1), MaxValueValidator(90)])
    min_traffic = models.PositiveIntegerField(
        default=20,
        help_text="Fewer events than this in an alert window never page (a quiet class with two "
        "failed jobs is not an incident).",
    )
    runbook_url = models.URLField(max_length=500, blank=True, help_text="Overrides the class's runbook for this SLO.")

    class Meta:
        ordering = ["workload_class", "kind"]
        constraints = [models.UniqueConstraint(fields=["workload_class", "kind"], name="one_slo_per_kind_per_class")]

    def __str__(self) -> str:
        return f"{self.workload_class_id}:{self.kind}"

    @property
    def error_budget_fraction(self) -> float:
        return 1 - float(self.target_percent) / 100

    def clean(self) -> None:
        errors = {}
        if self.target_percent is not None and not (0 < self.target_percent < 100):
            errors["target_percent"] = "The target must be strictly between 0 and 100 (for example 99.5)."
        if self.kind in (SloKind.QUEUE_AGE, SloKind.COMPLETION_LATENCY):
            if self.threshold_seconds is None:
                errors["threshold_seconds"] = "Queue-age and latency SLOs need a threshold in seconds."
            if self.percentile is None:
                errors["percentile"] = "Queue-age and latency SLOs need a percentile (for example 95)."
        elif self.kind == SloKind.SUCCESS_RATIO:
            if self.threshold_seconds is not None:
                errors["threshold_seconds"] = "A success-ratio SLO has no threshold; leave it empty."
            if self.percentile is not None:
                errors["percentile"] = "A success-ratio SLO has no percentile; leave it empty."
        if errors:
            raise ValidationError(errors)


class ScheduleKind(models.TextChoices):
    NIGHTLY = "nightly", "Nightly"
    WEEKEND = "weekend", "Weekend"
    CUSTOM = "custom", "Custom"


class SchedulePolicy(models.Model):
    """A traffic-profile window that overrides a class's min/max instances.

    The window opens on each listed day at `start_time` (local to `timezone`) and closes at
    `end_time` the same day, or the next day when `end_time` is not after `start_time` (a
    nightly 22:00-06:00 window). When windows overlap, the one with the highest priority wins,
    then the shorter window (the more specific override), then the name: see
    `workloads.domain.scheduling.active_policy`.
    """

    workload_class = models.ForeignKey(WorkloadClass, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=ScheduleKind.choices, default=ScheduleKind.CUSTOM)
    days_of_week = models.JSONField(
        validators=[validation.validate_days_of_week],
        help_text="Days the window opens: 0 = Monday ... 6 = Sunday.",
    )
    start_time = models.TimeField()
    end_time = models.TimeField()
    timezone = models.CharField(max_length=64, default="UTC", validators=[validation.validate_timezone])
    min_instances = models.PositiveIntegerField(validators=[MaxValueValidator(MAX_INSTANCES_LIMIT)])
    max_instances = models.PositiveIntegerField(validators=[MaxValueValidator(MAX_INSTANCES_LIMIT)])
    priority = models.IntegerField(default=0, validators=[MinValueValidator(-1000), MaxValueValidator(1000)])
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["workload_class", "-priority", "name"]
        verbose_name_plural = "schedule policies"
        constraints = [
            models.UniqueConstraint(fields=["workload_class", "name"], name="unique_schedule_name_per_class")
        ]

    def __str__(self) -> str:
        return f"{self.workload_class_id}:{self.name}"

    def clean(self) -> None:
        if (
            self.min_instances is not None
            and self.max_instances is not None
            and self.min_instances > self.max_instances
        ):
            raise ValidationError({"min_instances": "The minimum instance count must not exceed the maximum."})
