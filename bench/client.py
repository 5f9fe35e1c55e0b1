"""A small asyncio HTTP/1.1 client for the benchmarks: keep-alive connections over loopback, raw
sockets (no client library to install), two ways to drive a server:

- closed loop (`closed_loop`): N connections, each sending its next request as soon as the last
  answer arrived, for a fixed time; measures throughput;
- open loop (`open_loop`): requests scheduled on a clock at a fixed rate whatever the answers do
  (a slow server gets more concurrent requests, not fewer), latency counted from the scheduled
  time so queueing is not hidden; measures latency at a given load.

Both stop by themselves: sends end at the deadline, and answers still missing a timeout after it
are counted as errors.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

REQUEST_TIMEOUT = 30.0
IDLE_LIMIT = 1.5  # seconds; under gunicorn's keep-alive timeout

# request(n) -> (path, body, expected status, bytes the answer must contain, events it carries)
RequestFactory = Callable[[int], "Request"]


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    expect_status: int
    expect_in_body: bytes = b""
    events: int = 1


def encode(request: Request, *, host: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {request.path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(request.body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + request.body


class Closed(Exception):
    """The server closed a kept-alive connection before answering (it never saw the request)."""


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.reusable = True
        self.idle_since = 0.0  # monotonic time it went back to the pool; 0 = never used

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=16 * 1024 * 1024)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def exchange(self, payload: bytes) -> tuple[int, bytes]:
        self.writer.write(payload)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise Closed()
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        body = await self.reader.readexactly(length) if length else b""
        self.reusable = not close
        return status, body

    def close(self) -> None:
        self.writer.close()


@dataclass
class Outcome:
    requests: int = 0
    ok_requests: int = 0
    ok_events: int = 0
    errors: int = 0
    elapsed: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    first_error: str = ""

    @property
    def events_per_second(self) -> float:
        return self.ok_events / self.elapsed if self.elapsed else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.ok_requests / self.elapsed if self.elapsed else 0.0

    def record(self, request: Request, status: int, body: bytes) -> bool:
        self.requests += 1
        self.statuses[status] += 1
        if status == request.expect_status and request.expect_in_body in body:
            self.ok_requests += 1
            self.ok_events += request.events
            return True
        self.errors += 1
        if not self.first_error:
            self.first_error = f"HTTP {status}: {body[:300]!r}"
        return False

    def fail(self, exc: BaseException) -> None:
        self.requests += 1
        self.errors += 1
        if not self.first_error:
            self.first_error = f"{type(exc).__name__}: {exc}"


async def _send(pool: list[Connection], host: str, port: int, payload: bytes) -> tuple[int, bytes]:
    """One exchange on an idle pooled connection (or a new one). Gunicorn closes connections idle
    for its keep-alive time (2 s), so older idle ones are dropped, and a pooled connection found
    closed anyway is replaced by a new one, once."""
    now = time.monotonic()
    while pool and now - pool[-1].idle_since > IDLE_LIMIT:
        pool.pop().close()
    connection = pool.pop() if pool else await Connection.open(host, port)
    reused = connection.idle_since > 0
    try:
        status, body = await asyncio.wait_for(connection.exchange(payload), REQUEST_TIMEOUT)
    except (Closed, ConnectionResetError, BrokenPipeError):
        connection.close()
        if not reused:
            raise
        connection = await Connection.open(host, port)
        try:
            status, body = await asyncio.wait_for(connection.exchange(payload), REQUEST_TIMEOUT)
        except BaseException:
            connection.close()
            raise
    except BaseException:
        connection.close()
        raise
    if connection.reusable:
        connection.idle_since = time.monotonic()
        pool.append(connection)
    else:
        connection.close()
    return status, body


def closed_loop(
    host: str,
    port: int,
    factory: RequestFactory,
    *,
    duration: float,
    connections: int,
    headers: dict[str, str],
    numbers: itertools.count,
) -> Outcome:
    """Keep `connections` requests in flight for `duration` seconds; `numbers` makes every request
    unique across calls (event ids come from it)."""

    async def main() -> Outcome:
        outcome = Outcome()
        deadline = time.perf_counter() + duration
        started = time.perf_counter()
        finished = started

        async def worker():
            nonlocal finished
            pool: list[Connection] = []
            try:
                while time.perf_counter() < deadline:
                    request = factory(next(numbers))
                    try:
                        status, body = await _send(pool, host, port, encode(request, host=host, headers=headers))
                    except Exception as exc:
                        outcome.fail(exc)
                        continue
                    outcome.record(request, status, body)
                    finished = max(finished, time.perf_counter())
            finally:
                for connection in pool:
                    connection.close()

        await asyncio.gather(*(worker() for _ in range(connections)))
        outcome.elapsed = finished - started
        return outcome

    return asyncio.run(main())


def open_loop(
    host: str,
    port: int,
    factory: RequestFactory,
    *,
    rate: float,
    duration: float,
    headers: dict[str, str],
    numbers: itertools.count,
    max_connections: int = 256,
) -> Outcome:
    """Send `rate` requests per second for `duration` seconds on a fixed schedule, without waiting
    for answers to send the next; latency is measured from each request's scheduled time."""

    async def main() -> Outcome:
        outcome = Outcome()
        pool: list[Connection] = []
        slots = asyncio.Semaphore(max_connections)  # a stuck server cannot make us open sockets forever
        total = int(rate * duration)
        started = time.perf_counter()
        tasks = []

        async def one(request: Request, scheduled: float):
            async with slots:
                try:
                    status, body = await _send(pool, host, port, encode(request, host=host, headers=headers))
                except Exception as exc:
                    outcome.fail(exc)
                    return
            if outcome.record(request, status, body):
                outcome.latencies.append(time.perf_counter() - scheduled)

        for i in range(total):
            scheduled = started + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(factory(next(numbers)), scheduled)))
        _done, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT) if tasks else (set(), set())
        for task in pending:
            task.cancel()
            outcome.fail(TimeoutError(f"no answer {REQUEST_TIMEOUT:g} s after the last send"))
        outcome.elapsed = time.perf_counter() - started
        for connection in pool:
            connection.close()
        return outcome

    return asyncio.run(main())


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]
