"""Migration evidence: the old and the new side of a plan on the same period, each figure with its
sample size and 95 % interval, the gate's verdict; and "where to start", the noisiest workloads.

Both sides are read from the telemetry rollups, the same rows the comparison and the cost report
read (workloads/domain/evidence.py has the statistics).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q

from workloads.domain import evidence, histogram
from workloads.domain.evidence import Interval
from workloads.domain.windows import window_spans
from workloads.models import MetricRollup, MigrationPlan, Phase, SloAlert, WorkloadClass
from workloads.models.migration import ACTIVE_PHASES
from workloads.runtimes import Runtime
from workloads.selectors.cost import class_cost, class_usage, instance_time_source
from workloads.selectors.rollups import minutes_kept_since, spans_query


@dataclass(frozen=True)
class SideEvidence:
    slug: str
    runtime: str
    completed: int
    failed: int
    failure_rate: Interval
    lead_time_p50: Interval
    lead_time_p95: Interval
    queue_age_attainment: Interval  # share of minutes within the queue-age SLO's threshold
    cost_per_1k_records: Interval
    currency: str
    records: int
    cost_source: str = ""  # where its instance time (compute cost) comes from, or why it is unknown
    outcomes_source: str = ""  # where completed and failed come from

    @property
    def outcomes(self) -> int:
        return self.completed + self.failed


@dataclass(frozen=True)
class PlanEvidence:
    plan: MigrationPlan
    phase: str
    start: datetime
    end: datetime
    old: SideEvidence
    new: SideEvidence | None
    checks: list[evidence.Check]
    verdict: str

    def as_dict(self) -> dict:
        def side(s: SideEvidence | None):
            return (
                None if s is None else {k: (asdict(v) if isinstance(v, Interval) else v) for k, v in s.__dict__.items()}
            )

        return {
            "phase": self.phase,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "old": side(self.old),
            "new": side(self.new),
            "checks": [asdict(c) for c in self.checks],
            "verdict": self.verdict,
        }


def _unit_cost(workload_class: WorkloadClass) -> tuple[Decimal, Decimal, Decimal] | None:
    rates = workload_class.cost_rates
    if rates is None:
        return None
    per_instance_second = (
        workload_class.vcpu_per_instance * rates.vcpu_second + workload_class.memory_gib_per_instance * rates.gib_second
    )
    return per_instance_second, rates.per_record, rates.per_1k_tokens / 1000


def side_evidence(workload_class: WorkloadClass, *, start: datetime, end: datetime, now: datetime) -> SideEvidence:
    spans = window_spans(start, end, minutes_kept_since=minutes_kept_since(now))
    rows = list(
        MetricRollup.objects.filter(spans_query(spans), workload_class=workload_class).values_list(
            "completed",
            "failed",
            "latency_buckets",
            "queue_age_good",
            "queue_age_minutes",
            "instance_seconds",
            "records",
            "tokens",
            "instances",
            "executions",
            "execution_errors",
        )  # fmt: skip
    )
    completed = sum(r[0] for r in rows)
    failed = sum(r[1] for r in rows)
    outcomes_source = "worker kit or Celery reports"
    if not completed + failed and any(r[9] for r in rows):
        # No unit-of-work reports (no worker kit): the runtime's own executions, each a delivery
        # attempt that succeeded or not, as the kit's outcomes are. Read from Monitoring, and so
        # available at once through a backfill.
        errors = sum(r[10] for r in rows)
        completed, failed = sum(r[9] for r in rows) - errors, errors
        outcomes_source = "the runtime's own Cloud Monitoring metrics (executions and errors)"
    latency = histogram.merge(r[2] for r in rows)
    good_minutes = sum(r[3] for r in rows)
    minutes = sum(r[4] for r in rows)
    unit = _unit_cost(workload_class)
    cost = evidence.NO_DATA
    # An observed runtime without instance time has an unknown cost, not a cheaper one.
    known = workload_class.runtime == Runtime.WORKER_POOL or any(r[8] is not None or r[5] for r in rows)
    if unit is not None and known:
        per_second, per_record, per_token = unit
        pairs = [(float(Decimal(str(r[5])) * per_second + r[6] * per_record + r[7] * per_token), r[6]) for r in rows]
        cost = evidence.ratio_interval(pairs, scale=1000)
    return SideEvidence(
        slug=workload_class.slug,
        runtime=workload_class.runtime,
        completed=completed,
        failed=failed,
        failure_rate=evidence.wilson(failed, completed + failed),
        lead_time_p50=evidence.percentile_interval(latency, 50),
        lead_time_p95=evidence.percentile_interval(latency, 95),
        queue_age_attainment=evidence.wilson(good_minutes, minutes),
        cost_per_1k_records=cost,
        currency=workload_class.cost_rates.currency if workload_class.cost_rates else "",
        records=sum(r[6] for r in rows),
        cost_source=instance_time_source(workload_class, known=known),
        outcomes_source=outcomes_source,
    )


def gate_checks(plan: MigrationPlan, old: SideEvidence, new: SideEvidence) -> list[evidence.Check]:
    checks = [
        evidence.gate_failure_rate(
            new.failure_rate,
            old.failure_rate,
            margin_points=plan.max_failure_rate_increase_points,
            min_outcomes=plan.min_outcomes,
        ),
        evidence.gate_ratio(
            "lead_time_p95",
            new.lead_time_p95,
            old.lead_time_p95,
            max_ratio=plan.max_latency_p95_ratio,
            min_n=plan.min_outcomes,
            label="lead-time p95",
        ),
        evidence.gate_attainment(
            new.queue_age_attainment, old.queue_age_attainment, margin_points=plan.max_attainment_drop_points, min_n=10
        ),
    ]
    if old.currency != new.currency:
        checks.append(
            evidence.Check("cost_per_1k", evidence.INSUFFICIENT, "the two sides are priced in other currencies")
        )
    else:
        checks.append(
            evidence.gate_ratio(
                "cost_per_1k",
                new.cost_per_1k_records,
                old.cost_per_1k_records,
                max_ratio=plan.max_cost_per_1k_ratio,
                min_n=plan.min_outcomes,
                label="cost per 1k records",
            )
        )
    return checks


def plan_evidence(plan: MigrationPlan, *, now: datetime) -> PlanEvidence:
    """The phase under way: old and new side by side since it started (the baseline: old only)."""
    start, end = plan.phase_started_at, max(now, plan.phase_started_at + timedelta(minutes=1))
    old = side_evidence(plan.source, start=start, end=end, now=now)
    new = None
    checks: list[evidence.Check] = []
    if plan.phase not in (Phase.BASELINE, Phase.ROLLED_BACK):
        new = side_evidence(plan.target, start=start, end=end, now=now)
        checks = gate_checks(plan, old, new)
    verdict = evidence.overall(checks) if checks else "not gated"
    return PlanEvidence(plan, plan.phase, start, end, old, new, checks, verdict)


def plans_in_environments(environment_ids) -> Q:
    """Plans whose two classes are both in these environments: a plan shows the evidence of both
    sides, so one side in an environment the reader may not see hides the plan."""
    return Q(source__environment_id__in=environment_ids) & Q(target__environment_id__in=environment_ids)


def plans(*, active_only: bool = False, environment_ids: set[int] | None = None):
    """Every plan (of these environments when `environment_ids` is not None: plans_in_environments)."""
    rows = MigrationPlan.objects.select_related("source", "target", "created_by")
    if environment_ids is not None:
        rows = rows.filter(plans_in_environments(environment_ids))
    return rows.filter(phase__in=ACTIVE_PHASES) if active_only else rows


def plan_for_detail(plan_id: int, *, environment_ids: set[int] | None = None) -> MigrationPlan | None:
    """The plan with its classes' cost rates; None when there is none, or when it is not in
    `environment_ids` (plans_in_environments)."""
    rows = MigrationPlan.objects.select_related("source__cost_rates", "target__cost_rates", "created_by")
    if environment_ids is not None:
        rows = rows.filter(plans_in_environments(environment_ids))
    return rows.filter(pk=plan_id).first()


EVIDENCE_CSV_HEADER = [
    "phase", "start", "end", "side", "class", "runtime", "completed", "failed",
    "failure_rate", "failure_rate_low", "failure_rate_high",
    "lead_time_p50_seconds", "lead_time_p50_low", "lead_time_p50_high", "lead_time_p50_n",
    "lead_time_p95_seconds", "lead_time_p95_low", "lead_time_p95_high", "lead_time_p95_n",
    "queue_age_attainment", "queue_age_attainment_low", "queue_age_attainment_high", "queue_age_minutes",
    "cost_per_1k_records", "cost_per_1k_low", "cost_per_1k_high", "records", "currency", "verdict",
]  # fmt: skip


def evidence_csv_rows(report: PlanEvidence) -> list[list]:
    rows = []
    for name, side in (("old", report.old), ("new", report.new)):
        if side is None:
            continue
        row = [report.phase, report.start.isoformat(), report.end.isoformat(), name, side.slug, side.runtime,
               side.completed, side.failed]  # fmt: skip
        for interval, with_n in (
            (side.failure_rate, False),
            (side.lead_time_p50, True),
            (side.lead_time_p95, True),
            (side.queue_age_attainment, True),
        ):
            row += [interval.estimate, interval.low, interval.high] + ([interval.n] if with_n else [])
        cost = side.cost_per_1k_records
        row += [cost.estimate, cost.low, cost.high, side.records, side.currency, report.verdict]
        rows.append(row)
    return rows


# --- where to start --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    workload_class: WorkloadClass
    outcomes: int
    failure_rate: float | None
    retries: int  # failed attempts counted by the workers, retried or not
    slo_misses: int  # SLO alerts opened in the window
    cost_per_1k_records: Decimal | None
    score: float
    reasons: list[str]
    in_plan: bool

    @property
    def movable(self) -> bool:
        return self.workload_class.runtime != Runtime.WORKER_POOL and not self.in_plan


def migration_candidates(*, now: datetime, days: int = 7, environment_ids: set[int] | None = None) -> list[Candidate]:
    """Every registered workload ranked by noise over the last `days`: failure rate, failed
    attempts, SLO misses and cost per 1k records, each as its rank among the classes (0 = quietest,
    1 = noisiest), summed. The first movable one (an observed runtime without an active plan) is the
    suggested first candidate; its reasons name where it ranks worst. With `environment_ids`, only
    those environments' classes, ranked among themselves."""
    start = now - timedelta(days=days)
    classes = WorkloadClass.objects.select_related("cost_rates").order_by("slug")
    if environment_ids is not None:
        classes = classes.filter(environment_id__in=environment_ids)
    classes = list(classes)
    usage = class_usage(start=start, end=now, now=now)
    misses = dict(
        SloAlert.objects.filter(opened_at__gte=start)
        .values("slo__workload_class_id")
        .annotate(n=Count("id"))
        .values_list("slo__workload_class_id", "n")
    )
    in_plan = set(MigrationPlan.objects.filter(phase__in=ACTIVE_PHASES).values_list("source_id", flat=True))
    lines = {wc.pk: class_cost(wc, usage.get(wc.pk, {})) for wc in classes}
    raw = {}
    for wc in classes:
        line = lines[wc.pk]
        outcomes = line.completed + line.failed
        raw[wc.pk] = {
            "failure_rate": line.failed / outcomes if outcomes else None,
            "retries": line.failed,
            "slo_misses": misses.get(wc.pk, 0),
            "cost_per_1k_records": line.cost_per_1k_records if line.has_rates else None,
        }
    ranks: dict[int, dict[str, float]] = {wc.pk: {} for wc in classes}
    for metric in ("failure_rate", "retries", "slo_misses", "cost_per_1k_records"):
        known = sorted((v[metric], pk) for pk, v in raw.items() if v[metric] is not None)
        for position, (_value, pk) in enumerate(known):
            ranks[pk][metric] = position / (len(known) - 1) if len(known) > 1 else 0.0
    labels = {
        "failure_rate": "failure rate",
        "retries": "failed attempts",
        "slo_misses": "SLO misses",
        "cost_per_1k_records": "cost per 1k records",
    }
    candidates = []
    for wc in classes:
        values, rank = raw[wc.pk], ranks[wc.pk]
        worst = sorted((r, m) for m, r in rank.items() if r >= 0.5 and values[m])[::-1]
        reasons = [f"{labels[m]} among the highest ({_shown(m, values[m])})" for _r, m in worst]
        line = lines[wc.pk]
        candidates.append(
            Candidate(
                workload_class=wc,
                outcomes=line.completed + line.failed,
                failure_rate=values["failure_rate"],
                retries=values["retries"],
                slo_misses=values["slo_misses"],
                cost_per_1k_records=values["cost_per_1k_records"],
                score=round(sum(rank.values()), 3),
                reasons=reasons or ["no figure stands out"],
                in_plan=wc.pk in in_plan,
            )
        )
    return sorted(candidates, key=lambda c: (-c.score, c.workload_class.slug))


def _shown(metric: str, value) -> str:
    if metric == "failure_rate":
        return f"{value * 100:.1f} %"
    return str(value)


def best_candidate(candidates: list[Candidate]) -> Candidate | None:
    return next((c for c in candidates if c.movable), None)


def class_has_active_plan(workload_class: WorkloadClass) -> bool:
    return MigrationPlan.objects.filter(
        Q(source=workload_class) | Q(target=workload_class), phase__in=ACTIVE_PHASES
    ).exists()
