"""The WorkerPools port for one machine: a pool is a row with an instance count, and
`manage.py runfleet` (fleet.py) keeps that many `runworker` processes alive per pool.

A count change is accepted as soon as it is committed (there is no long-running operation to wait
for), so a pool is always reconciled from the port's point of view; whether the processes are up
is the supervisor's business. Every change is kept in LocalPoolChange for the instance-count metric.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from workloads.providers.base import PoolSpec, PoolState, WorkerPools
from workloads.providers.local.models import LocalPoolChange, LocalWorkerPool
from workloads.providers.local.names import invalid, not_found

MODIFIER = "controlplane"


def _state(pool: LocalWorkerPool) -> PoolState:
    return PoolState(
        name=pool.name,
        instance_count=pool.instance_count,
        generation=pool.generation,
        observed_generation=pool.generation,
        ready=True,
        reconciling=False,
        last_modifier=pool.last_modifier,
        update_time=pool.update_time,
        exits_observed=True,
        exits_in_row=pool.exits_in_row,
        last_exit_at=pool.last_exit_at,
        last_exit_code=pool.last_exit_code,
        revision=pool.revision,
    )


class LocalWorkerPools(WorkerPools):
    def __init__(self, *, using: str = "default", now: Callable[[], datetime] = timezone.now):
        self.using = using
        self._now = now

    def get(self, spec: PoolSpec) -> PoolState:
        return _state(self._pool(spec))

    def ensure(self, spec: PoolSpec, *, initial_instances: int = 0) -> PoolState:
        _check_count(spec, initial_instances)
        pool = LocalWorkerPool.objects.using(self.using).filter(name=spec.worker_pool).first()
        if pool is not None:
            return _state(pool)
        now = self._now()
        try:
            with transaction.atomic(using=self.using):
                pool = LocalWorkerPool.objects.using(self.using).create(
                    name=spec.worker_pool,
                    slug=spec.slug,
                    instance_count=initial_instances,
                    generation=1,
                    last_modifier=MODIFIER,
                    update_time=now,
                    created_at=now,
                )
                LocalPoolChange.objects.using(self.using).create(
                    pool=pool,
                    instance_count=initial_instances,
                    generation=1,
                    changed_at=now,
                    modifier=MODIFIER,
                    reason="created",
                )
        except IntegrityError:  # created by someone else meanwhile: theirs stands
            return self.get(spec)
        return _state(pool)

    def set_instances(self, spec: PoolSpec, count: int, *, reason: str) -> PoolState:
        _check_count(spec, count)
        now = self._now()
        with transaction.atomic(using=self.using):
            pool = self._pool(spec, for_update=True)
            if pool.instance_count == count:
                return _state(pool)
            pool.instance_count = count
            pool.generation += 1
            pool.last_modifier = MODIFIER
            pool.update_time = now
            pool.save(using=self.using, update_fields=["instance_count", "generation", "last_modifier", "update_time"])
            LocalPoolChange.objects.using(self.using).create(
                pool=pool,
                instance_count=count,
                generation=pool.generation,
                changed_at=now,
                modifier=MODIFIER,
                reason=reason[:500],
            )
        return _state(pool)

    def delete(self, spec: PoolSpec) -> bool:
        # runfleet stops the pool's workers once its row is gone; its history goes with it.
        deleted, _ = LocalWorkerPool.objects.using(self.using).filter(name=spec.worker_pool).delete()
        return bool(deleted)

    def _pool(self, spec: PoolSpec, *, for_update: bool = False) -> LocalWorkerPool:
        pools = LocalWorkerPool.objects.using(self.using)
        if for_update:
            pools = pools.select_for_update()
        pool = pools.filter(name=spec.worker_pool).first()
        if pool is None:
            raise not_found(
                "worker pool",
                spec.worker_pool,
                f"it is created for class {spec.slug} by WorkerPools.ensure when the class's resources are "
                "ensured; `manage.py runfleet` then runs its workers.",
            )
        return pool


def _check_count(spec: PoolSpec, count: int) -> None:
    if not isinstance(count, int) or count < 0:
        raise invalid(f"The instance count of {spec.worker_pool} must be a whole number >= 0, got {count!r}.")


def local_pools_new_revision(*, using: str = "default", now: datetime | None = None) -> str:
    """Give every local pool a new revision, as Cloud Run does on a deploy: runfleet calls it when
    it starts, since the workers it starts run the code as it is now. Returns the revision."""
    now = now or timezone.now()
    revision = f"local-{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}"
    LocalWorkerPool.objects.using(using).update(revision=revision)
    return revision
