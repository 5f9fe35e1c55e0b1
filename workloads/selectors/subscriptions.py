"""Read side of a class's subscription: the snapshots it can seek to."""

from __future__ import annotations

from workloads.models import WorkloadClass
from workloads.providers import get_providers
from workloads.providers.base import SnapshotInfo
from workloads.providers.specs import queue_spec


def snapshot_short_name(info: SnapshotInfo) -> str:
    """`before-deploy-1` of `projects/P/snapshots/before-deploy-1`: what a seek accepts."""
    return info.name.rsplit("/", 1)[-1]


def class_snapshots(workload_class: WorkloadClass) -> list[SnapshotInfo]:
    """The unexpired snapshots of the class's topic, by name (asks the provider: may raise
    ProviderError)."""
    return get_providers().queue.list_snapshots(queue_spec(workload_class))
