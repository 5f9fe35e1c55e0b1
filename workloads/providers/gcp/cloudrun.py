"""The WorkerPools port on the Cloud Run Admin API v2 (`run_v2.WorkerPoolsClient`).

Worker pools scale only through `scaling.manual_instance_count`. Scaling is a read-modify-write:
fetch the pool, change the count, send the fetched object back with the update mask
`scaling.manual_instance_count` (its etag rides along, so a concurrent change makes the update fail
instead of being overwritten), then wait for the long-running operation. The whole cycle is what
gets retried, so a conflict re-reads the pool rather than resending a stale etag.
"""

from __future__ import annotations

import concurrent.futures
import logging
from datetime import datetime

from google.api_core import exceptions as gexc
from google.cloud import run_v2
from google.protobuf import field_mask_pb2

from workloads.providers.base import PoolSpec, PoolState, ProviderError, WorkerPools
from workloads.providers.gcp.errors import DEFAULT_BACKOFF, RUN_ROLE, Backoff, call_with_retry

logger = logging.getLogger(__name__)

SCALING_MASK = "scaling.manual_instance_count"


def pool_state(pool: run_v2.WorkerPool) -> PoolState:
    ready = (
        not pool.reconciling
        and pool.observed_generation == pool.generation
        and pool.latest_ready_revision == pool.latest_created_revision
    )
    update_time = pool.update_time
    return PoolState(
        name=pool.name,
        # A pool created without an explicit count has none set; Cloud Run then runs none we asked for.
        instance_count=pool.scaling.manual_instance_count if "manual_instance_count" in pool.scaling else 0,
        generation=pool.generation,
        observed_generation=pool.observed_generation,
        ready=ready,
        reconciling=pool.reconciling,
        last_modifier=pool.last_modifier,
        update_time=update_time if isinstance(update_time, datetime) and update_time.timestamp() > 0 else None,
        message="" if ready else pool.terminal_condition.message,
        revision=pool.latest_ready_revision,
    )


class CloudRunWorkerPools(WorkerPools):
    def __init__(
        self,
        client: run_v2.WorkerPoolsClient,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        timeout: float = 30.0,
        operation_timeout: float = 300.0,
    ):
        self._client = client
        self._backoff = backoff
        self._timeout = timeout  # run_v2 methods have no default timeout: always pass one
        self._operation_timeout = operation_timeout

    def get(self, spec: PoolSpec) -> PoolState:
        pool = call_with_retry(
            lambda: self._client.get_worker_pool(name=spec.worker_pool, timeout=self._timeout),
            what="read the worker pool",
            resource=spec.worker_pool,
            role=RUN_ROLE,
            backoff=self._backoff,
        )
        return pool_state(pool)

    def set_instances(self, spec: PoolSpec, count: int, *, reason: str) -> PoolState:
        if count < 0:
            raise ValueError(f"instance count must be 0 or more, got {count}")
        return call_with_retry(
            lambda: self._set_once(spec, count, reason),
            what="scale the worker pool",
            resource=spec.worker_pool,
            role=RUN_ROLE,
            backoff=self._backoff,
        )

    def delete(self, spec: PoolSpec) -> bool:
        """Delete the pool (its revisions and instances go with it) and wait for the operation;
        NOT_FOUND is "already gone". The whole cycle is retried, so a retry after a lost answer
        finds the pool gone and reports it so."""
        try:
            return call_with_retry(
                lambda: self._delete_once(spec),
                what="delete the worker pool",
                resource=spec.worker_pool,
                role=RUN_ROLE,
                backoff=self._backoff,
            )
        except ProviderError as exc:
            if exc.code == "NOT_FOUND":
                return False
            raise

    def _delete_once(self, spec: PoolSpec) -> bool:
        operation = self._client.delete_worker_pool(name=spec.worker_pool, timeout=self._timeout)
        try:
            operation.result(timeout=self._operation_timeout)
        except concurrent.futures.TimeoutError:
            raise ProviderError(
                f"Cloud Run accepted deleting {spec.worker_pool} but the operation {operation.operation.name} has "
                f"not finished after {self._operation_timeout:.0f} s; check the Cloud Run console.",
                permanent=False,
                code="DEADLINE_EXCEEDED",
                resource=spec.worker_pool,
            ) from None
        logger.info("deleted the worker pool %s", spec.worker_pool)
        return True

    def _set_once(self, spec: PoolSpec, count: int, reason: str) -> PoolState:
        pool = self._client.get_worker_pool(name=spec.worker_pool, timeout=self._timeout)
        if "manual_instance_count" in pool.scaling and pool.scaling.manual_instance_count == count:
            return pool_state(pool)
        before = pool.scaling.manual_instance_count
        pool.scaling = run_v2.WorkerPoolScaling(manual_instance_count=count)
        try:
            operation = self._client.update_worker_pool(
                worker_pool=pool,
                update_mask=field_mask_pb2.FieldMask(paths=[SCALING_MASK]),
                timeout=self._timeout,
            )
        except gexc.FailedPrecondition as exc:
            # A stale etag may come back as FAILED_PRECONDITION instead of ABORTED (which code Cloud
            # Run uses is unverified). If the pool changed since our read, it is that conflict:
            # raise it as ABORTED, so the whole cycle is re-read and retried; else it is real.
            fresh = self._client.get_worker_pool(name=spec.worker_pool, timeout=self._timeout)
            if fresh.etag != pool.etag:
                raise gexc.Aborted(f"The worker pool changed since it was read: {exc.message}") from exc
            raise
        try:
            updated = operation.result(timeout=self._operation_timeout)
        except concurrent.futures.TimeoutError:
            raise ProviderError(
                f"Cloud Run accepted scaling {spec.worker_pool} to {count} instances but the operation "
                f"{operation.operation.name} has not finished after {self._operation_timeout:.0f} s; check the "
                "pool's conditions in the Cloud Run console.",
                permanent=False,
                code="DEADLINE_EXCEEDED",
                resource=spec.worker_pool,
            ) from None
        logger.info("scaled %s from %s to %s instances: %s", spec.worker_pool, before, count, reason)
        return pool_state(updated)
