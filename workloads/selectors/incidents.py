"""Read-side queries about incident mode and pauses."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Prefetch, Q

from workloads.models import IncidentMode, PoolHold, Tier, WorkloadClass
from workloads.models.incidents import OPEN_HOLD_STATES
from workloads.providers import get_providers
from workloads.providers.base import ProviderError
from workloads.providers.specs import pool_spec
from workloads.runtimes import Runtime


def default_expiry() -> timedelta:
    return timedelta(minutes=settings.INCIDENT_DEFAULT_EXPIRY_MINUTES)


def duration_text(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes} min"


def retention_warning(workload_class: WorkloadClass, *, paused_for: timedelta) -> str:
    """A warning when a pause of this length may outlast the subscription's message retention:
    messages older than the retention are deleted unread."""
    retention = timedelta(seconds=workload_class.message_retention_seconds)
    if paused_for <= retention:
        return ""
    return (
        f"{workload_class.slug}: the subscription keeps messages for {duration_text(retention)} but the pause may "
        f"last {duration_text(paused_for)}; messages waiting longer are lost. Resume sooner or raise its retention."
    )[:255]


def retention_warnings(*, expires_in: timedelta | None = None, classes=None) -> list[str]:
    """What entering incident mode (or pausing `classes`) for `expires_in` would warn about: shown
    before the operator confirms."""
    expires_in = default_expiry() if expires_in is None else expires_in
    if classes is None:
        classes = WorkloadClass.objects.filter(tier=Tier.DEFERRABLE, runtime=Runtime.WORKER_POOL).order_by("slug")
    return [w for w in (retention_warning(wc, paused_for=expires_in) for wc in classes) if w]


def active_incident(environment=None, *, any_environment: bool = True) -> IncidentMode | None:
    """The incident mode in force now, or None when there is none.

    Every page shows a banner while incident mode is active (`dashboards.context_processors`
    calls this once per full page); the banner reads `started_by_label` (kept even after the user
    is deleted), `reason`, `ticket` (may be blank), `started_at` and `expires_at`. An incident
    past its expiry stays active until the expiry tick ends it.

    `environment`: the one in force there (its own, or one for every environment);
    `any_environment=False` without it: only one for every environment.
    """
    active = IncidentMode.objects.filter(ended_at__isnull=True).select_related("started_by", "environment")
    if environment is not None:
        # An incident for every environment covers this one too.
        return (
            active.filter(Q(environment=environment) | Q(environment__isnull=True))
            .order_by(F("environment").asc(nulls_last=True))
            .first()
        )
    if not any_environment:
        return active.filter(environment__isnull=True).first()
    return active.first()


def incident_holds(incident: IncidentMode):
    """The pools an incident paused, with what each had and how it was restored."""
    return incident.holds.select_related("workload_class", "pause_action", "restore_action").order_by(
        "workload_class__slug"
    )


def open_holds():
    """Every pause in force or being restored, by incident mode or on its own."""
    return PoolHold.objects.filter(state__in=OPEN_HOLD_STATES).select_related("workload_class", "incident")


def incident_history(*, exclude_active: bool = True):
    """Past incidents, newest first, each with its holds (pool, count paused from, count restored
    to, restore rule) prefetched: two queries per page whatever the number of pools."""
    incidents = IncidentMode.objects.select_related("enter_action", "exit_action").prefetch_related(
        Prefetch("holds", queryset=PoolHold.objects.select_related("workload_class").order_by("workload_class__slug"))
    )
    if exclude_active:
        incidents = incidents.filter(ended_at__isnull=False)
    return incidents.order_by("-started_at", "-id")


@dataclass(frozen=True)
class PoolPreview:
    """One pool that entering incident mode would pause, as it is now."""

    workload_class: WorkloadClass
    instance_count: int | None  # read from the provider now; None when it could not be read
    read_error: ProviderError | None
    already_paused: bool  # paused on its own: it keeps its own pause and is not part of the incident
    retention_warning: str


@dataclass(frozen=True)
class EnterPreview:
    pools: list[PoolPreview]
    expires_in: timedelta
    warnings: list[str]

    @property
    def to_pause(self) -> list[PoolPreview]:
        return [p for p in self.pools if not p.already_paused]

    @property
    def instances_to_stop(self) -> int:
        return sum(p.instance_count or 0 for p in self.to_pause)


def incident_enter_preview(*, expires_in: timedelta, environment=None) -> EnterPreview:
    """What entering incident mode now would do: every deferrable class's pool with its current
    instance count, read from the provider (one call per deferrable pool, only when an operator
    asks for this preview), whether it is already paused on its own, and the retention warnings
    the service would give for this expiry."""
    classes = WorkloadClass.objects.filter(tier=Tier.DEFERRABLE, runtime=Runtime.WORKER_POOL).order_by("slug")
    if environment is not None:
        classes = classes.filter(environment=environment)
    classes = list(classes)
    paused = set(
        PoolHold.objects.filter(state__in=OPEN_HOLD_STATES, workload_class__in=classes).values_list(
            "workload_class_id", flat=True
        )
    )
    pools = get_providers().pools
    rows = []
    for workload_class in classes:
        count, error = None, None
        try:
            count = pools.get(pool_spec(workload_class)).instance_count
        except ProviderError as exc:
            error = exc
        rows.append(
            PoolPreview(
                workload_class=workload_class,
                instance_count=count,
                read_error=error,
                already_paused=workload_class.pk in paused,
                retention_warning=retention_warning(workload_class, paused_for=expires_in),
            )
        )
    return EnterPreview(
        pools=rows,
        expires_in=expires_in,
        warnings=retention_warnings(expires_in=expires_in, classes=[p.workload_class for p in rows]),
    )
