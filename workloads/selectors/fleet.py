"""Read side of the fleet overview and the class detail page.

Live telemetry has one source: `workloads.selectors.telemetry` (the overview's per-class rows, the
class charts' series, SLO cards and alerts). This module adds what the screens need around it:
registry values (the schedule window in force, the next change), sorting, the actions and
configuration changes that mark the charts' time axis, and the class's recent actions. Every
function reads a fixed number of rows per class shown, never history.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from workloads.domain.scheduling import BoundsChange, InstanceBounds, instance_bounds, next_bounds_change
from workloads.models import Action, AuditEvent, PoolControl, PoolHold, SchedulePolicy, Tier, WorkloadClass
from workloads.models.incidents import OPEN_HOLD_STATES, HoldState
from workloads.selectors import telemetry
from workloads.selectors.deadletters import TREND_HOURS, DeadLetterAttention, dead_letter_attention
from workloads.selectors.incidents import duration_text
from workloads.selectors.telemetry import ClassStatus, ClassTelemetryRow

# The pool's own statuses, shown instead of the SLO status when they say more: an unhealthy pool
# (its workers do no work) before anything else, a paused or held pool instead of a green OK.
POOL_UNHEALTHY, POOL_PAUSED, POOL_HELD = "unhealthy", "paused", "held"

# Worst first: sorting by status puts what needs attention at the top.
STATUS_SEVERITY = {
    POOL_UNHEALTHY: 0,
    ClassStatus.BREACHED: 1,
    ClassStatus.AT_RISK: 2,
    ClassStatus.STALE: 3,
    ClassStatus.NO_DATA: 4,
    POOL_PAUSED: 5,
    POOL_HELD: 6,
    ClassStatus.OK: 7,
}
TIER_RANK = {Tier.CRITICAL: 0, Tier.STANDARD: 1, Tier.DEFERRABLE: 2}


NO_DEAD_LETTERS = DeadLetterAttention(needs_attention=0, new=0, held=0, trend=(0,) * TREND_HOURS)


@dataclass(frozen=True)
class FleetRow:
    workload_class: WorkloadClass
    bounds: InstanceBounds  # the schedule window in force now (or the baseline)
    live: ClassTelemetryRow
    # What the control plane last set the pool to (a scale, a pause or a restore), and whether
    # something else changed the count since (PoolControl); None until the controller first ran.
    target_instances: int | None = None
    drifted: bool = False
    drift_detail: str = ""
    paused: bool = False  # a pause (on its own or by incident mode) is in force or being restored
    hold: PoolHold | None = None  # that open hold: a pause (at 0) or a manual override (at a count)
    unhealthy: bool = False  # the pool's workers do no work while a backlog waits (workloads.domain.health)
    health_detail: str = ""
    # Dead letters in the mirror that need a person (new or held) and their 24 h arrival trend:
    # the dead-letter subscription's backlog reads 0 as soon as the sync has mirrored it.
    dead_letters: DeadLetterAttention = NO_DEAD_LETTERS

    @property
    def status(self) -> str:
        """What the status column shows: the pool's health or hold where it says more than the SLOs."""
        live = self.live.status
        if self.unhealthy:
            return POOL_UNHEALTHY
        if self.hold is not None and live not in (ClassStatus.BREACHED, ClassStatus.AT_RISK):
            return POOL_HELD if self.hold.is_override else POOL_PAUSED
        return live

    @property
    def status_reason(self) -> str:
        status = self.status
        if status == POOL_UNHEALTHY:
            return f"Worker pool unhealthy: {self.health_detail}"
        if status in (POOL_PAUSED, POOL_HELD):
            return hold_summary(self.hold)
        return self.live.status_reason

    @property
    def queue_age_over_slo(self) -> bool:
        live = self.live
        return (
            live.queue_age_seconds is not None
            and live.queue_age_threshold_seconds is not None
            and live.queue_age_seconds > live.queue_age_threshold_seconds
        )

    @property
    def latency_over_slo(self) -> bool:
        live = self.live
        return (
            live.latency_p95_seconds is not None
            and live.latency_threshold_seconds is not None
            and live.latency_p95_seconds > live.latency_threshold_seconds
        )

    @property
    def has_data(self) -> bool:
        """False until the class's first metrics arrive: its budget (100 % of nothing) and cost
        (zero) would read as measurements, so the row shows "no data" instead."""
        return self.live.status != ClassStatus.NO_DATA

    @property
    def is_stale(self) -> bool:
        return self.live.status == ClassStatus.STALE

    @property
    def open_incidents(self) -> int:
        """Alerts grouped as incidents are: one per SLO, however many of its windows burn."""
        return len({alert.slo_id for alert in self.live.active_alerts})

    @property
    def paging_alerts(self) -> int:
        """Incidents (SLOs) with a paging window open."""
        return len({alert.slo_id for alert in self.live.active_alerts if alert.severity == "page"})


def hold_summary(hold: PoolHold, *, now: datetime | None = None) -> str:
    """'Held at 0 by the pause (incident mode), 3 h 20 min left: reason' and the like."""
    what = f"Held at {hold.hold_count} by the override" if hold.is_override else "Held at 0 by the pause"
    by = "incident mode" if hold.incident_id else hold.created_by_label
    if hold.state == HoldState.RESTORING:
        return f"{what} ({by}): restoring"
    left = hold.expires_at - (now or timezone.now())
    left_text = duration_text(left) if left >= timedelta(minutes=1) else "under a minute"
    return f"{what} ({by}), {left_text} left: {hold.reason}"


def _schedules_prefetch() -> Prefetch:
    return Prefetch("schedules", queryset=SchedulePolicy.objects.order_by("-priority", "name"))


def fleet_teams() -> list[str]:
    return list(WorkloadClass.objects.order_by("owner_team").values_list("owner_team", flat=True).distinct())


def _sort_value(row: FleetRow, key: str):
    live = row.live
    return {
        "status": STATUS_SEVERITY[row.status],
        "name": row.workload_class.name.lower(),
        "team": row.workload_class.owner_team.lower(),
        "tier": TIER_RANK.get(row.workload_class.tier, 99),
        "queue_age": live.queue_age_seconds,
        "backlog": live.backlog,
        "p95": live.latency_p95_seconds,
        "budget": live.error_budget_remaining_percent,
        "alerts": len({alert.slo_id for alert in live.active_alerts}),
        "dead_letters": row.dead_letters.needs_attention,
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
    *,
    now: datetime,
    team: str = "",
    tier: str = "",
    search: str = "",
    sort: str = "status",
    class_ids: list[int] | None = None,
) -> list[FleetRow]:
    """Every class matching the filters (and among `class_ids` when given: the overview's page,
    see fleet_page), one row each with its live telemetry, sorted by `sort` (see sort_fleet_rows).
    Eight queries whatever the number of classes: classes with their rates, live values and pool
    control, SLOs with their status, schedules, open alerts, today's usage, open pauses, dead
    letters needing attention and their trend."""
    classes = WorkloadClass.objects.select_related("pool_control").prefetch_related(_schedules_prefetch())
    if class_ids is not None:
        classes = classes.filter(pk__in=class_ids)
    if team:
        classes = classes.filter(owner_team=team)
    if tier:
        classes = classes.filter(tier=tier)
    if search:
        classes = classes.filter(Q(slug__icontains=search) | Q(name__icontains=search))
    lives = telemetry.fleet_overview(now=now, classes=classes.order_by("slug"))
    holds = (
        {
            hold.workload_class_id: hold
            for hold in PoolHold.objects.filter(
                state__in=OPEN_HOLD_STATES, workload_class_id__in=[live.workload_class.pk for live in lives]
            )
        }
        if lives
        else {}
    )
    attention = dead_letter_attention(now=now, class_ids=class_ids) if lives else {}
    rows = []
    for live in lives:
        wc = live.workload_class
        control = _pool_control_of(wc)
        rows.append(
            FleetRow(
                workload_class=wc,
                bounds=instance_bounds(wc.baseline_bounds, wc.schedules.all(), now),
                live=live,
                target_instances=control.last_set_count if control else None,
                drifted=bool(control and control.is_drifted),
                drift_detail=control.drift_detail if control else "",
                paused=wc.pk in holds and not holds[wc.pk].is_override,
                hold=holds.get(wc.pk),
                unhealthy=bool(control and control.is_unhealthy),
                health_detail=control.health_detail if control else "",
                dead_letters=attention.get(wc.pk, NO_DEAD_LETTERS),
            )
        )
    return sort_fleet_rows(rows, sort)


def _pool_control_of(workload_class: WorkloadClass) -> PoolControl | None:
    try:
        return workload_class.pool_control
    except PoolControl.DoesNotExist:
        return None


# --- Class detail -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScheduleStatus:
    bounds: InstanceBounds  # in force now
    next_change: BoundsChange | None
    active_policy_name: str | None


def workload_class_for_detail(slug: str) -> WorkloadClass | None:
    """The class with its cost rates, live telemetry and schedules loaded, or None."""
    return (
        WorkloadClass.objects.select_related("cost_rates", "telemetry")
        .prefetch_related(_schedules_prefetch())
        .filter(slug=slug)
        .first()
    )


def schedule_status(workload_class: WorkloadClass, *, now: datetime) -> ScheduleStatus:
    policies = list(workload_class.schedules.all())
    bounds = instance_bounds(workload_class.baseline_bounds, policies, now)
    return ScheduleStatus(
        bounds=bounds,
        next_change=next_bounds_change(workload_class.baseline_bounds, policies, now),
        active_policy_name=None if bounds.source == "baseline" else bounds.source,
    )


# Configuration changes mark the charts like deploys do: the moment behaviour may have changed.
CONFIG_CHANGE_ACTIONS = ("workload_class.create", "workload_class.update")
MAX_MARKERS = 100


# An action requested this long before a chart's range may still end inside it.
ACTION_LOOKBACK = timedelta(days=1)


def class_actions_in_range(*, workload_class: WorkloadClass, start: datetime, end: datetime) -> list[Action]:
    """The class's actions requested or ended in [start, end], newest first, at most MAX_MARKERS.
    The lookback bound keeps the scan on the (class, created_at) index, whatever the history."""
    ends_in_range = Q(created_at__gte=start) | Q(finished_at__gte=start, finished_at__lte=end)
    return list(
        Action.objects.filter(
            ends_in_range, workload_class=workload_class, created_at__gte=start - ACTION_LOOKBACK, created_at__lte=end
        ).order_by("-created_at", "-id")[:MAX_MARKERS]
    )


def class_config_changes(
    *, workload_class: WorkloadClass, start: datetime | None = None, limit: int = MAX_MARKERS
) -> list[AuditEvent]:
    """Changes to the class's configuration (creation, settings, SLOs, schedules), newest first."""
    events = AuditEvent.objects.filter(workload_class_slug=workload_class.slug, action__in=CONFIG_CHANGE_ACTIONS)
    if start is not None:
        events = events.filter(occurred_at__gte=start)
    return list(events.order_by("-occurred_at", "-id")[:limit])


def class_recent_actions(*, workload_class: WorkloadClass, limit: int = 10) -> list[Action]:
    return list(Action.objects.filter(workload_class=workload_class).order_by("-created_at", "-id")[:limit])


def classes_for_choice(environment=None) -> QuerySet[WorkloadClass]:
    """Slug and name of every class (of `environment` when one is given), for filter drop-downs."""
    classes = WorkloadClass.objects.order_by("slug").only("slug", "name")
    return classes.filter(environment=environment) if environment is not None else classes
