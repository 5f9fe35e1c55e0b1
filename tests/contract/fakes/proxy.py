"""A gRPC proxy that forwards unary calls byte for byte to another server (the Pub/Sub emulator)
and can fail the next calls first, so retry paths run against the real emulator behind it. Frozen
(`freeze()` .. `thaw()`), it holds every call without answering, as an unreachable or hung
service does: a call ends with DEADLINE_EXCEEDED at its own deadline, or goes through once thawed."""

from __future__ import annotations

import threading

import grpc

from tests.contract.fakes.server import Faults, GrpcServer

_FORWARDED_METADATA = ("x-goog-request-params",)


class FaultProxy(grpc.GenericRpcHandler):
    def __init__(self, target: str):
        self.faults = Faults()
        self.methods: list[str] = []  # every call received, e.g. "/google.pubsub.v1.Publisher/CreateTopic"
        self._channel = grpc.insecure_channel(target)
        self._server = GrpcServer(self)
        self.address = self._server.address
        self._thawed = threading.Event()
        self._thawed.set()

    def freeze(self) -> None:
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    def fail_next(self, code: str, times: int = 1, *, method: str | None = None) -> None:
        self.faults.fail_next(code, times, method=method)

    def service(self, handler_call_details):
        method = handler_call_details.method
        upstream = self._channel.unary_unary(method)  # no (de)serializers: raw bytes both ways

        def forward(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.methods.append(method)
            self.faults.check(context, method)
            if not self._thawed.wait(timeout=context.time_remaining()):
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"{method}: no answer (frozen)")
            metadata = [(k, v) for k, v in context.invocation_metadata() if k in _FORWARDED_METADATA]
            remaining = context.time_remaining()
            try:
                return upstream(request, metadata=metadata, timeout=remaining)
            except grpc.RpcError as exc:
                context.abort(exc.code(), exc.details())

        return grpc.unary_unary_rpc_method_handler(forward)

    def stop(self) -> None:
        self.thaw()
        self._server.stop()
        self._channel.close()
