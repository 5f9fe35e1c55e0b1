"""Whether a class is paused (by incident mode or on its own), and what pausing one would mean."""

from dataclasses import dataclass
from datetime import timedelta

from workloads.models import ClassTelemetry, PoolControl, PoolHold, Tier, WorkloadClass
from workloads.models.incidents import OPEN_HOLD_STATES
from workloads.selectors.incidents import retention_warning


def class_is_paused(workload_class: WorkloadClass) -> bool:
    """True from the moment a pause is requested until its pool has been restored: ingestion of
    a class configured to shed load refuses events for that whole time."""
    return PoolHold.objects.filter(workload_class=workload_class, state__in=OPEN_HOLD_STATES).exists()


@dataclass(frozen=True)
class PausePreview:
    """What pausing one class's pool for `paused_for` means, shown before the operator confirms:
    its tier (a critical or standard class is not one incident mode would pause), the work waiting
    now, and whether the pause may outlast what the subscription keeps."""

    workload_class: WorkloadClass
    paused_for: timedelta
    backlog: int | None  # messages waiting at the last poll (None: never polled)
    oldest_age_seconds: float | None
    instances: int | None  # as the controller last saw the pool
    retention_seconds: int
    retention_warning: str  # "" when the pause ends within the retention

    @property
    def not_deferrable(self) -> bool:
        return self.workload_class.tier != Tier.DEFERRABLE


def pause_preview(workload_class: WorkloadClass, *, paused_for: timedelta) -> PausePreview:
    live = ClassTelemetry.objects.filter(workload_class=workload_class).first()
    control = PoolControl.objects.filter(workload_class=workload_class).first()
    return PausePreview(
        workload_class=workload_class,
        paused_for=paused_for,
        backlog=round(live.backlog) if live is not None and live.backlog is not None else None,
        oldest_age_seconds=live.oldest_unacked_age_seconds if live is not None else None,
        instances=control.last_observed_count if control is not None else None,
        retention_seconds=workload_class.message_retention_seconds,
        retention_warning=retention_warning(workload_class, paused_for=paused_for),
    )
