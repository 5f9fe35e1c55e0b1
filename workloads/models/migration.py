"""Migration plans: moving one class from its runtime to a Worker Pool, in phases, on evidence.

The class being moved (`source`) keeps its runtime and its ingestion endpoint; the Worker Pool side
(`target`) is a class of its own, so each side's figures are measured apart. The plan routes a
share of the source's ingested events to the target by a stable hash of their idempotency key
(the share lives on the source class, `route_percent` / `route_to`, so ingestion reads it with the
class). Each phase change is an action; its gate verdict, the evidence behind it and who acted are
kept as a `MigrationDecision`.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Phase(models.TextChoices):
    BASELINE = "baseline", "Baseline"
    CANARY = "canary", "Canary"
    RAMP = "ramp", "Ramp"
    CUT_OVER = "cut_over", "Cut over"
    ROLLED_BACK = "rolled_back", "Rolled back"


ACTIVE_PHASES = (Phase.BASELINE, Phase.CANARY, Phase.RAMP, Phase.CUT_OVER)
# The phases a plan moves forward through; roll-back is allowed from any active phase.
FORWARD = {
    Phase.BASELINE: (Phase.CANARY,),
    Phase.CANARY: (Phase.RAMP, Phase.CUT_OVER),
    Phase.RAMP: (Phase.CUT_OVER,),
    Phase.CUT_OVER: (),
    Phase.ROLLED_BACK: (),
}


class MigrationPlan(models.Model):
    name = models.CharField(max_length=120)
    source = models.ForeignKey("workloads.WorkloadClass", on_delete=models.PROTECT, related_name="migration_plans")
    target = models.ForeignKey("workloads.WorkloadClass", on_delete=models.PROTECT, related_name="migration_plans_in")
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.BASELINE)
    phase_started_at = models.DateTimeField()
    canary_percent = models.PositiveIntegerField(
        default=20, validators=[MinValueValidator(1), MaxValueValidator(99)],
        help_text="Share of the source's events routed to the Worker Pool during the canary.",
    )  # fmt: skip
    ramp_percent = models.PositiveIntegerField(
        default=50, validators=[MinValueValidator(1), MaxValueValidator(99)],
        help_text="Share routed during the ramp.",
    )  # fmt: skip
    # The gate: the new side may be worse than the old by at most this much.
    max_failure_rate_increase_points = models.FloatField(
        default=1.0, validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Percentage points the failure rate may rise (95 % upper bound of new - old).",
    )  # fmt: skip
    max_latency_p95_ratio = models.FloatField(
        default=1.25, validators=[MinValueValidator(0.01), MaxValueValidator(100)],
        help_text="The new lead-time p95 (its 95 % upper bound) over the old p95.",
    )  # fmt: skip
    max_cost_per_1k_ratio = models.FloatField(
        default=1.10, validators=[MinValueValidator(0.01), MaxValueValidator(100)],
        help_text="The new cost per 1k records (its 95 % upper bound) over the old.",
    )  # fmt: skip
    # Attainment is counted in minutes, which are few in a canary: 60 perfect minutes a side only
    # bound the drop to about 6 points, so the default margin is wide.
    max_attainment_drop_points = models.FloatField(
        default=10.0, validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Percentage points the queue-age SLO attainment may drop (95 % lower bound).",
    )  # fmt: skip
    min_outcomes = models.PositiveIntegerField(
        default=100, validators=[MinValueValidator(1)], help_text="Outcomes a side before the gate can pass."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source"],
                condition=models.Q(phase__in=["baseline", "canary", "ramp", "cut_over"]),
                name="one_active_migration_plan_per_source",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.source_id} -> {self.target_id}, {self.phase})"

    def route_percent_for(self, phase: str) -> int:
        return {
            Phase.BASELINE: 0,
            Phase.CANARY: self.canary_percent,
            Phase.RAMP: self.ramp_percent,
            Phase.CUT_OVER: 100,
            Phase.ROLLED_BACK: 0,
        }[Phase(phase)]

    @property
    def is_active(self) -> bool:
        return self.phase in ACTIVE_PHASES


class MigrationDecision(models.Model):
    """One phase change: the gate's verdict, the evidence it was judged on, who acted."""

    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="decisions")
    from_phase = models.CharField(max_length=16, choices=Phase.choices)
    to_phase = models.CharField(max_length=16, choices=Phase.choices)
    verdict = models.CharField(max_length=16, help_text="pass, fail, insufficient, or not gated (roll-back).")
    overridden = models.BooleanField(default=False, help_text="Acted on despite a verdict other than pass.")
    evidence = models.JSONField(default=dict)
    reason = models.TextField(blank=True)
    action = models.ForeignKey("workloads.Action", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    acted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acted_by_label = models.CharField(max_length=150, default="system")
    acted_at = models.DateTimeField()

    class Meta:
        ordering = ["-acted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.plan_id}: {self.from_phase} -> {self.to_phase} ({self.verdict})"
