"""Helpers for tests of pauses, incident mode and the scaling controller: classes whose worker
pools exist in the local provider (or the Cloud Run fake), and running actions to the end."""

from __future__ import annotations

from datetime import datetime

from tests.factories import WorkloadClassFactory
from workloads.models import Action, ActionState, ClassTelemetry, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.local.models import LocalWorkerPool
from workloads.providers.local.pools import LocalWorkerPools
from workloads.providers.specs import pool_spec
from workloads.services.actions import action_run


def pooled_class(slug: str, *, instances: int, tier: str = "deferrable", **fields) -> WorkloadClass:
    """A class whose local worker pool exists with `instances` instances."""
    workload_class = WorkloadClassFactory(slug=slug, tier=tier, **fields)
    get_providers().pools.ensure(pool_spec(workload_class), initial_instances=instances)
    return workload_class


def instances(workload_class: WorkloadClass) -> int:
    return get_providers().pools.get(pool_spec(workload_class)).instance_count


def someone_else_sets(workload_class: WorkloadClass, count: int, *, who: str = "ops@example.com") -> None:
    """Another writer changes the pool (a manual gcloud, or a second autoscaler such as CREMA)."""
    LocalWorkerPools().set_instances(pool_spec(workload_class), count, reason="manual change")
    LocalWorkerPool.objects.filter(name=workload_class.worker_pool).update(last_modifier=who)


def run_pending(**filters) -> list[Action]:
    """Run every pending action (oldest first) the way a worker would; returns them, refreshed."""
    ran = []
    for action in Action.objects.filter(state=ActionState.PENDING, **filters).order_by("id"):
        action_run(action_id=action.pk)
        action.refresh_from_db()
        ran.append(action)
    return ran


def fresh_backlog(workload_class: WorkloadClass, *, backlog: float, queue_age: float | None, now: datetime) -> None:
    ClassTelemetry.objects.update_or_create(
        workload_class=workload_class,
        defaults={
            "fetched_at": now,
            "newest_sample_at": now,
            "backlog": backlog,
            "oldest_unacked_age_seconds": queue_age,
        },
    )
