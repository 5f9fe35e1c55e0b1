"""Whether a class is paused (by incident mode or on its own).

Pause state is owned by the operator-actions module (incident mode and per-class pauses); until a
class can be paused there, nothing is paused, and this is the one place that will ask it.
"""

from workloads.models import WorkloadClass


def class_is_paused(workload_class: WorkloadClass) -> bool:
    return False
