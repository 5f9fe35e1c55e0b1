"""Read side of the fleet overview and the class detail page.

`fleet_rows` is the one call the overview makes: a row per class with every value the table
shows, in a fixed number of queries whatever the number of classes. Registry values (team, tier,
SLO thresholds, the schedule window in force) come from the database now; live telemetry comes
from `live_values`, which answers "no data" for every class until the telemetry rollups exist.
"""

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Prefetch, Q, QuerySet

from workloads.models import AuditEvent, SchedulePolicy, Slo, SloKind, Tier, WorkloadClass
from workloads.scheduling import BoundsChange, InstanceBounds, instance_bounds, next_bounds_change


class FleetStatus(enum.StrEnum):
    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    STALE = "stale"  # metrics stopped arriving: never shown as healthy
    NO_DATA = "no_data"  # nothing polled yet


# Worst first: sorting by status puts what needs attention at the top.
STATUS_SEVERITY = {
    FleetStatus.BREACHED: 0,
    FleetStatus.AT_RISK: 1,
    FleetStatus.STALE: 2,
    FleetStatus.NO_DATA: 3,
    FleetStatus.OK: 4,
}
TIER_RANK = {Tier.CRITICAL: 0, Tier.STANDARD: 1, Tier.DEFERRABLE: 2}


@dataclass(frozen=True)
class LiveValues:
    """One class's live telemetry as the overview shows it; None means no data yet."""

    status: FleetStatus = FleetStatus.NO_DATA
    queue_age_seconds: float | None = None
    backlog: int | None = None
    dead_letters: int | None = None
    p95_latency_seconds: float | None = None
    budget_remaining_percent: float | None = None  # the worst SLO's
    active_alerts: int | None = None
    instances: int | None = None  # actual, as the provider reports it
    target_instances: int | None = None  # what the control plane last set
    drifted: bool = False  # the pool's count was changed by something else
    cost_today: Decimal | None = None
    newest_sample_at: datetime | None = None


NO_LIVE_VALUES = LiveValues()


@dataclass(frozen=True)
class FleetRow:
    workload_class: WorkloadClass
    bounds: InstanceBounds  # the schedule window in force now (or the baseline)
    queue_age_slo: Slo | None
    latency_slo: Slo | None
    live: LiveValues


def live_values(classes: list[WorkloadClass], *, now: datetime) -> dict[str, LiveValues]:
    """Live telemetry per class slug, read from rollups with a bounded number of queries for all
    `classes` together. No rollups exist yet (the telemetry issue adds them and answers here), so
    every class reads as "no data"; a class missing from the result has no data."""
    return {}


def _slo_of_kind(workload_class: WorkloadClass, kind: str) -> Slo | None:
    # Reads the prefetched SLOs: no query per row.
    return next((slo for slo in workload_class.slos.all() if slo.kind == kind), None)


def _classes_with_policies() -> QuerySet[WorkloadClass]:
    return WorkloadClass.objects.select_related("cost_rates").prefetch_related(
        "slos", Prefetch("schedules", queryset=SchedulePolicy.objects.order_by("-priority", "name"))
    )


def fleet_teams() -> list[str]:
    return list(WorkloadClass.objects.order_by("owner_team").values_list("owner_team", flat=True).distinct())


def _sort_value(row: FleetRow, key: str):
    live = row.live
    return {
        "status": STATUS_SEVERITY[live.status],
        "name": row.workload_class.name.lower(),
        "team": row.workload_class.owner_team.lower(),
        "tier": TIER_RANK.get(row.workload_class.tier, 99),
        "queue_age": live.queue_age_seconds,
        "backlog": live.backlog,
        "p95": live.p95_latency_seconds,
        "budget": live.budget_remaining_percent,
        "alerts": live.active_alerts,
        "dead_letters": live.dead_letters,
        "instances": live.instances,
        "cost": live.cost_today,
    }[key]


FLEET_SORT_KEYS = (
    "status",
    "name",
    "team",
    "tier",
    "queue_age",
    "backlog",
    "p95",
    "budget",
    "alerts",
    "dead_letters",
    "instances",
    "cost",
)


def sort_fleet_rows(rows: list[FleetRow], sort: str) -> list[FleetRow]:
    """Sort by `key` or `-key` (descending). Rows without a value go last either way, and ties
    keep a stable order by slug, so a refresh never shuffles equal rows."""
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    if key not in FLEET_SORT_KEYS:
        raise ValueError(f"Unknown sort key {key!r}")
    by_slug = sorted(rows, key=lambda row: row.workload_class.slug)
    with_value = [row for row in by_slug if _sort_value(row, key) is not None]
    without_value = [row for row in by_slug if _sort_value(row, key) is None]
    with_value.sort(key=lambda row: _sort_value(row, key), reverse=descending)
    return with_value + without_value


def fleet_rows(
    *, now: datetime, team: str = "", tier: str = "", search: str = "", sort: str = "status"
) -> list[FleetRow]:
    """Every class matching the filters, one row each, sorted by `sort` (see sort_fleet_rows)."""
    classes = _classes_with_policies()
    if team:
        classes = classes.filter(owner_team=team)
    if tier:
        classes = classes.filter(tier=tier)
    if search:
        classes = classes.filter(Q(slug__icontains=search) | Q(name__icontains=search))
    classes = list(classes)
    live = live_values(classes, now=now)
    rows = [
        FleetRow(
            workload_class=wc,
            bounds=instance_bounds(wc, wc.schedules.all(), now),
            queue_age_slo=_slo_of_kind(wc, SloKind.QUEUE_AGE),
            latency_slo=_slo_of_kind(wc, SloKind.COMPLETION_LATENCY),
            live=live.get(wc.slug, NO_LIVE_VALUES),
        )
        for wc in classes
    ]
    return sort_fleet_rows(rows, sort)


# --- Class detail -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScheduleStatus:
    bounds: InstanceBounds  # in force now
    next_change: BoundsChange | None
    active_policy_name: str | None


@dataclass(frozen=True)
class ClassSeries:
    """Time series for one class's charts over a range: `x` holds step ends (epoch seconds) and
    `values` one list per series key, aligned with `x` (None for a step without data)."""

    x: list[int]
    values: dict[str, list[float | None]]
    fetched_at: datetime | None = None
    newest_sample_at: datetime | None = None

    @property
    def is_empty(self) -> bool:
        return not self.x


# The series the class charts draw, by key.
SERIES_KEYS = (
    "queue_age",
    "backlog",
    "dead_letters",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "completed",
    "failed",
    "instances",
    "cost",
)


def workload_class_for_detail(slug: str) -> WorkloadClass | None:
    """The class with its cost rates, SLOs and schedules loaded, or None."""
    return _classes_with_policies().filter(slug=slug).first()


def schedule_status(workload_class: WorkloadClass, *, now: datetime) -> ScheduleStatus:
    policies = list(workload_class.schedules.all())
    bounds = instance_bounds(workload_class, policies, now)
    return ScheduleStatus(
        bounds=bounds,
        next_change=next_bounds_change(workload_class, policies, now),
        active_policy_name=None if bounds.source == "baseline" else bounds.source,
    )


def class_series(*, workload_class: WorkloadClass, start: datetime, end: datetime, step_seconds: int) -> ClassSeries:
    """The class's chart series over [start, end] with at most (end - start) / step points per
    series, read from rollups (hourly ones for long ranges) so the cost does not grow with history.
    No rollups exist yet (the telemetry issue fills this in), so every range is empty."""
    return ClassSeries(x=[], values={key: [] for key in SERIES_KEYS})


def class_events(*, workload_class: WorkloadClass, start: datetime | None = None, limit: int = 10) -> list[AuditEvent]:
    """Recent changes and actions on the class, newest first, from the audit trail: they mark the
    charts' time axis and fill the "recent actions" list."""
    events = AuditEvent.objects.filter(workload_class_slug=workload_class.slug)
    if start is not None:
        events = events.filter(occurred_at__gte=start)
    return list(events.order_by("-occurred_at", "-id")[:limit])
