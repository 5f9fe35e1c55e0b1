"""An in-process gRPC server on a free loopback port, plus fault injection shared by the fakes."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc


class Faults:
    """`fail_next(code, times, method=None)`: the next `times` calls (of `method` only, when given)
    fail with that gRPC status."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: list[tuple[grpc.StatusCode, str | None]] = []

    def fail_next(self, code: str | grpc.StatusCode, times: int = 1, *, method: str | None = None) -> None:
        status = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode[code]
        with self._lock:
            self._pending.extend([(status, method)] * times)

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()

    def take(self, method: str) -> grpc.StatusCode | None:
        with self._lock:
            for index, (status, only) in enumerate(self._pending):
                if only is None or method.endswith(only):
                    del self._pending[index]
                    return status
        return None

    def check(self, context: grpc.ServicerContext, method: str) -> None:
        """Abort the call in progress if a fault is pending for it (context.abort raises)."""
        status = self.take(method)
        if status is not None:
            context.abort(status, f"injected {status.name} for {method}")


class GrpcServer:
    def __init__(self, *handlers: grpc.GenericRpcHandler, workers: int = 8):
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
        self._server.add_generic_rpc_handlers(handlers)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None)
