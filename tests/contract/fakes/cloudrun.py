"""A fake Cloud Run Admin API v2 (services google.cloud.run.v2.WorkerPools and
google.longrunning.Operations) that the real `run_v2.WorkerPoolsClient` talks to over gRPC.

Pools live in memory and look like real ones (generation, observed generation, revisions, ready
condition, etag, last modifier). An update applies its field mask, bumps the generation and
returns a long-running operation: done at once, or after `pending_polls` GetOperation calls,
during which the pool is reconciling. A stale etag fails with ABORTED, as optimistic concurrency
does on the real service.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import grpc
from google.cloud import run_v2
from google.longrunning import operations_pb2
from google.protobuf import timestamp_pb2

from tests.contract.fakes.server import Faults

_u = grpc.unary_unary_rpc_method_handler
CALLER = "controlplane@contract-proj.iam.gserviceaccount.com"


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp


def _copy(pool: run_v2.WorkerPool) -> run_v2.WorkerPool:
    return run_v2.WorkerPool.deserialize(run_v2.WorkerPool.serialize(pool))


class FakeCloudRun:
    def __init__(self):
        self.faults = Faults()
        self._lock = threading.Lock()
        self.pools: dict[str, run_v2.WorkerPool] = {}
        self.operations: dict[str, dict] = {}
        self.requests: list[tuple[str, object]] = []
        self.pending_polls = 0  # GetOperation calls before an update's operation is done
        self.operation_error: tuple[grpc.StatusCode, str] | None = None  # how the next operation fails
        self.caller = CALLER
        self._stale_after_get: set[str] = set()
        self.denied_updates: set[str] = set()
        # Google's guidance (AIP-154) answers a stale etag with ABORTED; some APIs answer
        # FAILED_PRECONDITION. Which one Cloud Run uses is unverified, so the fake can do both.
        self.stale_etag_code = grpc.StatusCode.ABORTED
        self.act_as_denied: set[str] = set()

    def reset(self) -> None:
        with self._lock:
            self.pools.clear()
            self.operations.clear()
            self.requests.clear()
            self.pending_polls = 0
            self.operation_error = None
            self._stale_after_get.clear()
            self.denied_updates.clear()
            self.stale_etag_code = grpc.StatusCode.ABORTED
            self.act_as_denied.clear()
        self.faults.reset()

    def fail_next(self, code: str, times: int = 1, *, method: str | None = None) -> None:
        self.faults.fail_next(code, times, method=method)

    def change_behind_our_back(self, name: str) -> None:
        """Let someone else change the pool right after its next read (a second writer), so an
        update carrying the etag from that read is stale."""
        self._stale_after_get.add(name)

    def deny_updates(self, name: str) -> None:
        """The caller may read the pool but not change it (roles/run.viewer without run.developer)."""
        self.denied_updates.add(name)

    def deny_act_as(self, name: str) -> None:
        """The caller may update the pool but may not act as its service account (no
        roles/iam.serviceAccountUser on it): Cloud Run checks that on every update."""
        self.act_as_denied.add(name)

    def calls(self, method: str) -> list:
        return [request for name, request in self.requests if name == method]

    # --- seeding ------------------------------------------------------------------------------------
    def add_pool(self, name: str, *, instance_count: int, image: str = "us-docker.pkg.dev/demo/worker:1") -> None:
        short = name.rsplit("/", 1)[1]
        revision = f"{short}-00001-abc"
        pool = run_v2.WorkerPool(
            name=name,
            uid=str(uuid.uuid4()),
            generation=1,
            observed_generation=1,
            labels={"managed-by": "controlplane"},
            create_time=_now(),
            update_time=_now(),
            creator="someone@example.com",
            last_modifier="someone@example.com",
            template=run_v2.WorkerPoolRevisionTemplate(containers=[run_v2.Container(image=image)]),
            scaling=run_v2.WorkerPoolScaling(manual_instance_count=instance_count),
            terminal_condition=run_v2.Condition(type_="Ready", state=run_v2.Condition.State.CONDITION_SUCCEEDED),
            latest_ready_revision=revision,
            latest_created_revision=revision,
            reconciling=False,
            etag=uuid.uuid4().hex,
        )
        with self._lock:
            self.pools[name] = pool

    def roll_revision(self, name: str) -> None:
        """A deploy: the pool's next revision becomes its latest created and ready one."""
        with self._lock:
            pool = self.pools[name]
            short, number, suffix = pool.latest_ready_revision.rsplit("-", 2)
            revision = f"{short}-{int(number) + 1:05d}-{suffix}"
            pool.latest_ready_revision = pool.latest_created_revision = revision
            pool.update_time = _now()

    def handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        return (
            grpc.method_handlers_generic_handler(
                "google.cloud.run.v2.WorkerPools",
                {
                    "GetWorkerPool": _u(
                        self._get, run_v2.GetWorkerPoolRequest.deserialize, run_v2.WorkerPool.serialize
                    ),
                    "ListWorkerPools": _u(
                        self._list, run_v2.ListWorkerPoolsRequest.deserialize, run_v2.ListWorkerPoolsResponse.serialize
                    ),
                    "UpdateWorkerPool": _u(
                        self._update,
                        run_v2.UpdateWorkerPoolRequest.deserialize,
                        operations_pb2.Operation.SerializeToString,
                    ),
                    "DeleteWorkerPool": _u(
                        self._delete,
                        run_v2.DeleteWorkerPoolRequest.deserialize,
                        operations_pb2.Operation.SerializeToString,
                    ),
                },
            ),
            grpc.method_handlers_generic_handler(
                "google.longrunning.Operations",
                {
                    "GetOperation": _u(
                        self._get_operation,
                        operations_pb2.GetOperationRequest.FromString,
                        operations_pb2.Operation.SerializeToString,
                    ),
                },
            ),
        )

    # --- handlers -------------------------------------------------------------------------------------
    def _pool_or_abort(self, name: str, context) -> run_v2.WorkerPool:
        pool = self.pools.get(name)
        if pool is None:
            parts = name.split("/")
            project, region = (parts[1], parts[3]) if len(parts) == 6 else ("?", "?")
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"Resource '{parts[-1]}' of kind 'WORKER_POOL' in region '{region}' in project '{project}' "
                "does not exist.",
            )
        return pool

    def _get(self, request: run_v2.GetWorkerPoolRequest, context) -> run_v2.WorkerPool:
        self.requests.append(("GetWorkerPool", request))
        self.faults.check(context, "GetWorkerPool")
        with self._lock:
            pool = _copy(self._pool_or_abort(request.name, context))
            if request.name in self._stale_after_get:
                self._stale_after_get.discard(request.name)
                changed = run_v2.WorkerPool.pb(_copy(pool))
                changed.labels["touched-by"] = "someone-else"
                changed.generation += 1
                changed.observed_generation = changed.generation
                changed.etag = uuid.uuid4().hex
                changed.last_modifier = "someone@example.com"
                self.pools[request.name] = run_v2.WorkerPool.wrap(changed)
            return pool

    def _list(self, request: run_v2.ListWorkerPoolsRequest, context) -> run_v2.ListWorkerPoolsResponse:
        self.requests.append(("ListWorkerPools", request))
        self.faults.check(context, "ListWorkerPools")
        with self._lock:
            names = sorted(name for name in self.pools if name.startswith(request.parent + "/"))
            offset = int(request.page_token or 0)
            size = request.page_size or 100
            page = names[offset : offset + size]
            token = str(offset + size) if offset + size < len(names) else ""
            return run_v2.ListWorkerPoolsResponse(worker_pools=[self.pools[n] for n in page], next_page_token=token)

    def _update(self, request: run_v2.UpdateWorkerPoolRequest, context) -> operations_pb2.Operation:
        self.requests.append(("UpdateWorkerPool", request))
        self.faults.check(context, "UpdateWorkerPool")
        if request.worker_pool.name in self.denied_updates:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission 'run.workerpools.update' denied on resource '{request.worker_pool.name}' "
                "(or resource may not exist).",
            )
        if request.worker_pool.name in self.act_as_denied:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "Permission 'iam.serviceaccounts.actAs' denied on service account "
                "worker@demo-proj.iam.gserviceaccount.com (or it may not exist).",
            )
        with self._lock:
            current = self._pool_or_abort(request.worker_pool.name, context)
            if request.worker_pool.etag and request.worker_pool.etag != current.etag:
                context.abort(
                    self.stale_etag_code, "The etag does not match: the worker pool changed since it was read."
                )
            if request.worker_pool.scaling.manual_instance_count < 0:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "scaling.manual_instance_count must be >= 0")
            pb = run_v2.WorkerPool.pb(_copy(current))
            if request.update_mask.paths:
                request.update_mask.MergeMessage(
                    run_v2.WorkerPool.pb(request.worker_pool),
                    pb,
                    replace_message_field=True,
                    replace_repeated_field=True,
                )
            else:  # no mask: the whole resource is replaced
                pb.CopyFrom(run_v2.WorkerPool.pb(request.worker_pool))
            pb.generation = current.generation + 1
            pb.etag = uuid.uuid4().hex
            pb.update_time.CopyFrom(_now())
            pb.last_modifier = self.caller
            if self.operation_error is not None:
                # The change was accepted but failed to roll out: the operation ends with an error
                # and the pool keeps its previous settings.
                status, message = self.operation_error
                self.operation_error = None
                parts = current.name.split("/")
                operation = operations_pb2.Operation(
                    name=f"projects/{parts[1]}/locations/{parts[3]}/operations/{uuid.uuid4()}", done=True
                )
                operation.error.code = status.value[0]
                operation.error.message = message
                operation.metadata.Pack(run_v2.WorkerPool.pb(current))
                return operation
            done = self.pending_polls == 0
            if done:
                pb.observed_generation = pb.generation
                pb.reconciling = False
            else:
                pb.reconciling = True
            self.pools[current.name] = run_v2.WorkerPool.wrap(pb)
            parts = current.name.split("/")
            operation = operations_pb2.Operation(
                name=f"projects/{parts[1]}/locations/{parts[3]}/operations/{uuid.uuid4()}", done=done
            )
            operation.metadata.Pack(pb)
            if done:
                operation.response.Pack(pb)
            self.operations[operation.name] = {"pool": current.name, "polls_left": self.pending_polls}
            return operation

    def _delete(self, request: run_v2.DeleteWorkerPoolRequest, context) -> operations_pb2.Operation:
        """Deletes at once and answers with a done operation carrying the deleted pool."""
        self.requests.append(("DeleteWorkerPool", request))
        self.faults.check(context, "DeleteWorkerPool")
        if request.name in self.denied_updates:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission 'run.workerpools.delete' denied on resource '{request.name}' (or resource may not exist).",
            )
        with self._lock:
            pool = self._pool_or_abort(request.name, context)
            del self.pools[request.name]
            parts = request.name.split("/")
            operation = operations_pb2.Operation(
                name=f"projects/{parts[1]}/locations/{parts[3]}/operations/{uuid.uuid4()}", done=True
            )
            operation.metadata.Pack(run_v2.WorkerPool.pb(pool))
            operation.response.Pack(run_v2.WorkerPool.pb(pool))
            return operation

    def _get_operation(self, request: operations_pb2.GetOperationRequest, context) -> operations_pb2.Operation:
        self.requests.append(("GetOperation", request))
        with self._lock:
            entry = self.operations.get(request.name)
            if entry is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"operation {request.name} not found")
            entry["polls_left"] -= 1
            pb = run_v2.WorkerPool.pb(_copy(self.pools[entry["pool"]]))
            operation = operations_pb2.Operation(name=request.name, done=entry["polls_left"] <= 0)
            if operation.done:
                pb.observed_generation = pb.generation
                pb.reconciling = False
                self.pools[entry["pool"]] = run_v2.WorkerPool.wrap(pb)
                operation.response.Pack(pb)
            operation.metadata.Pack(pb)
            return operation
