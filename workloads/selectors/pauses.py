"""Whether a class is paused (by incident mode or on its own)."""

from workloads.models import PoolHold, WorkloadClass
from workloads.models.incidents import OPEN_HOLD_STATES


def class_is_paused(workload_class: WorkloadClass) -> bool:
    """True from the moment a pause is requested until its pool has been restored: ingestion of
    a class configured to shed load refuses events for that whole time."""
    return PoolHold.objects.filter(workload_class=workload_class, state__in=OPEN_HOLD_STATES).exists()
