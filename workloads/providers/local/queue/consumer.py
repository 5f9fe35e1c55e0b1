"""The streaming consumer behind `consume()`: a leasing thread, a pool of handler threads, and a
heartbeat that keeps the leases of running handlers alive."""

from __future__ import annotations

import logging
import queue as queue_module
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db import DatabaseError, connections

from workloads.providers.base import Disposition, MessageHandler, Outcome, ProviderError, QueueSpec, ReceivedMessage
from workloads.providers.local.names import short_id
from workloads.providers.local.queue.common import parse_ack_ids

if TYPE_CHECKING:
    from workloads.providers.local.queue import LocalQueue

logger = logging.getLogger(__name__)

IDLE_POLL_MIN, IDLE_POLL_MAX = 0.2, 1.0  # consume(): back off while nothing is available


class ConsumingMixin:
    using: str

    def consume(
        self,
        spec: QueueSpec,
        handler: MessageHandler,
        *,
        max_concurrency: int,
        stop: threading.Event,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        consumer = _Consumer(self, spec.subscription, handler, max_concurrency, stop)  # NOT_FOUND raises here
        try:
            consumer.run()
        finally:
            # The caller's thread may end right after (runworker, tests): do not leave its
            # connection open, unless it is inside a transaction it still needs.
            connection = connections[self.using]
            if not connection.in_atomic_block:
                connection.close()


class _Consumer:
    """consume(): one thread leases as many messages as there are free handler slots and keeps
    the leases of running handlers alive; `max_concurrency` threads run the handler and settle."""

    def __init__(
        self,
        queue: LocalQueue,
        subscription: str,
        handler: MessageHandler,
        max_concurrency: int,
        stop: threading.Event,
    ):
        self.queue = queue
        self.subscription_name = subscription
        self.subscription = queue._subscription(subscription)
        self.handler = handler
        self.slots = max_concurrency
        self.stop = stop
        self.lock = threading.Lock()
        self.in_flight: dict[int, str] = {}  # delivery pk -> lease token, from lease until settled
        self.work: queue_module.SimpleQueue[ReceivedMessage | None] = queue_module.SimpleQueue()
        self.wake = threading.Event()  # a handler finished: a slot is free, an ordering key unblocked
        self.next_heartbeat = 0.0

    def run(self) -> None:
        workers = [
            threading.Thread(target=self._work, name=f"consume-{short_id(self.subscription_name)}-{i}", daemon=True)
            for i in range(self.slots)
        ]
        for worker in workers:
            worker.start()
        idle = IDLE_POLL_MIN
        try:
            self._schedule_heartbeat()
            while not self.stop.is_set():
                self._heartbeat_if_due()
                with self.lock:
                    free = self.slots - len(self.in_flight)
                if free <= 0:
                    self._pause(IDLE_POLL_MIN)
                    continue
                try:
                    self.subscription = self.queue._subscription(self.subscription_name)
                    received = self.queue._lease(self.subscription, free)
                except DatabaseError:
                    logger.exception("Leasing from %s failed; retrying", self.subscription_name)
                    _reconnect_later(self.queue.using)
                    received = []
                if received:
                    with self.lock:
                        for message in received:
                            self.in_flight[_delivery_pk(message)] = _lease_token(message)
                    for message in received:
                        self.work.put(message)
                    idle = IDLE_POLL_MIN
                    continue
                self._pause(idle)
                idle = min(idle * 2, IDLE_POLL_MAX)
        finally:
            self._shut_down(workers)

    def _shut_down(self, workers: list[threading.Thread]) -> None:
        unstarted = []
        while True:
            try:
                message = self.work.get_nowait()
            except queue_module.Empty:
                break
            if message is not None:
                unstarted.append(message)
        if unstarted:
            with self.lock:
                for message in unstarted:
                    self.in_flight.pop(_delivery_pk(message), None)
            self._safely(self.queue._release, _leases(unstarted))
        for _ in workers:
            self.work.put(None)
        # In-flight handlers finish; their leases must stay alive meanwhile.
        while any(worker.is_alive() for worker in workers):
            self._heartbeat_if_due()
            for worker in workers:
                worker.join(timeout=0.1)

    def _work(self) -> None:
        try:
            while True:
                message = self.work.get()
                if message is None:
                    return
                try:
                    self._handle(message)
                finally:
                    # Even if the handler killed this thread: stop extending its lease, so the
                    # message comes back once the lease runs out.
                    with self.lock:
                        self.in_flight.pop(_delivery_pk(message), None)
                    self.wake.set()
        finally:
            connections.close_all()  # this thread's connections only: it ends here

    def _handle(self, message: ReceivedMessage) -> None:
        try:
            disposition = self.handler(message)
            if not isinstance(disposition, Disposition):
                raise TypeError(f"the handler returned {disposition!r}, not a Disposition")
        except Exception:
            logger.exception("Handler failed on message %s; nacking it", message.message_id)
            disposition = Disposition.nack()
        try:
            if disposition.outcome is Outcome.ACK:
                self.queue._ack(self.subscription, [message.ack_id])
            else:
                self.queue._nack(self.subscription, [message.ack_id], delay_seconds=disposition.delay_seconds)
        except (DatabaseError, ProviderError):
            # The lease expires and the message comes back: at-least-once, as promised.
            logger.exception("Settling message %s failed", message.message_id)
            _reconnect_later(self.queue.using)

    def _pause(self, seconds: float) -> None:
        """Wait up to `seconds`, returning early when a handler finishes; `stop` is seen in 0.1 s."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.wake.wait(min(remaining, 0.1)):
                self.wake.clear()
                return

    def _schedule_heartbeat(self) -> None:
        # Extend at a third of the deadline, so two missed beats still leave the lease alive.
        self.next_heartbeat = time.monotonic() + max(0.5, self.subscription.ack_deadline_seconds / 3)

    def _heartbeat_if_due(self) -> None:
        if time.monotonic() < self.next_heartbeat:
            return
        self._schedule_heartbeat()
        with self.lock:
            leases: dict[str, list[int]] = defaultdict(list)
            for pk, token in self.in_flight.items():
                leases[token].append(pk)
        if leases:
            self._safely(self.queue._extend, self.subscription, leases)

    def _safely(self, function, *args) -> None:
        try:
            function(*args)
        except DatabaseError:
            logger.exception("%s on %s failed", function.__name__, self.subscription_name)
            _reconnect_later(self.queue.using)


def _reconnect_later(using: str) -> None:
    """After a database error, drop this thread's connection (it may be broken: a restarted
    server, a network cut) so the next call opens a fresh one."""
    connection = connections[using]
    if not connection.in_atomic_block:
        connection.close()


def _delivery_pk(message: ReceivedMessage) -> int:
    return int(message.ack_id.partition(":")[0])


def _lease_token(message: ReceivedMessage) -> str:
    return message.ack_id.partition(":")[2]


def _leases(messages: Iterable[ReceivedMessage]) -> dict[str, list[int]]:
    return parse_ack_ids(m.ack_id for m in messages)
