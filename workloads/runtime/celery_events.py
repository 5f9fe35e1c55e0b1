"""Observing a Celery runtime from Celery's own task events, as the worker kit would report it.

Celery workers started with `-E` (or `worker_send_task_events`) publish task events on their
broker; `manage.py observe_celery` receives them, maps each task name to the workload class whose
`runtime_resource` names it, and aggregates completions, failures and completion latency per class
into the worker kit's `Reporter`, which writes them through the Metrics port once per interval. The
telemetry poll, the SLOs, the cost report and the comparison then read a Celery class exactly like
a class on a worker pool.

Latency runs from the task being sent (a `task-sent` event, which our ingestion asks for) or, when
the producer sends none, from the worker receiving it, to its success or final failure. A retry
(`task-retried`) is a failed attempt, as a nacked delivery is for the worker kit. Each completed
task counts as one record (cost per 1k records). The worker count comes from worker heartbeats.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from workloads.providers.base import Metrics
from workloads.runtime.reporting import Reporter

logger = logging.getLogger(__name__)

# A task whose start we never saw is forgotten after this long (its events were lost, or it was
# sent before the observer started): the map of pending tasks must not grow without bound.
PENDING_TTL_SECONDS = 24 * 3600
MAX_PENDING = 100_000


@dataclass
class _Pending:
    slug: str
    started: float  # event timestamp (seconds since the epoch)
    seen_at: float = field(default_factory=time.monotonic)


class CeleryTaskObserver:
    """Turns task events into per-class reports. Not thread-safe: one receiver loop feeds it."""

    def __init__(self, *, classes_by_task: Callable[[], dict[str, str]], metrics: Metrics,
                 instance_id: str = "celery-events", clock: Callable[[], float] = time.monotonic):  # fmt: skip
        # Re-read at every flush, so a class registered (or renamed) later is picked up.
        self._load_classes = classes_by_task
        self.classes_by_task = dict(classes_by_task())
        self._metrics = metrics
        self._instance_id = instance_id
        self.reporters: dict[str, Reporter] = {}
        self._pending: dict[str, _Pending] = {}
        self._clock = clock
        self.workers: dict[str, float] = {}  # hostname -> last heartbeat (event timestamp)
        self.events_seen = 0

    def on_event(self, event: dict) -> None:
        kind = event.get("type", "")
        self.events_seen += 1
        if kind.startswith("worker-"):
            if kind == "worker-offline":
                self.workers.pop(event.get("hostname", ""), None)
            else:
                self.workers[event.get("hostname", "")] = float(event.get("timestamp") or 0)
            return
        task_id = event.get("uuid")
        if not task_id:
            return
        if kind in ("task-sent", "task-received"):
            slug = self.classes_by_task.get(event.get("name", ""))
            if slug is not None and (kind == "task-sent" or task_id not in self._pending):
                self._remember(task_id, _Pending(slug, float(event.get("timestamp") or 0)))
            return
        pending = self._pending.get(task_id)
        if pending is None:
            return  # a task of another class, or one whose start we did not see
        reporter = self._reporter(pending.slug)
        if kind == "task-succeeded":
            del self._pending[task_id]
            latency = max(0.0, float(event.get("timestamp") or 0) - pending.started)
            reporter.observe(completed=True, latency=latency, records=1)
        elif kind in ("task-failed", "task-rejected", "task-revoked"):
            del self._pending[task_id]
            reporter.observe(failed=True)
        elif kind == "task-retried":
            reporter.observe(failed=True)  # a failed attempt; the task stays pending

    def _remember(self, task_id: str, pending: _Pending) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._forget_old(force=True)
        self._pending[task_id] = pending

    def _forget_old(self, *, force: bool = False) -> None:
        cutoff = self._clock() - PENDING_TTL_SECONDS
        for task_id in [t for t, p in self._pending.items() if p.seen_at < cutoff]:
            del self._pending[task_id]
        if force and len(self._pending) >= MAX_PENDING:
            oldest = sorted(self._pending, key=lambda t: self._pending[t].seen_at)[: MAX_PENDING // 10]
            for task_id in oldest:
                del self._pending[task_id]

    def _reporter(self, slug: str) -> Reporter:
        if slug not in self.reporters:
            self.reporters[slug] = Reporter(
                metrics=self._metrics, slug=slug, worker_pool="", instance_id=self._instance_id
            )
        return self.reporters[slug]

    def flush(self) -> None:
        self._forget_old()
        for reporter in self.reporters.values():
            reporter.flush()
        try:
            self.classes_by_task = dict(self._load_classes())
        except Exception:  # the database away for a moment: keep observing with the last mapping
            logger.warning("could not reload the Celery classes; keeping the last mapping", exc_info=True)

    @property
    def pending(self) -> int:
        return len(self._pending)


def observe_celery_events(*, app, broker_url: str, observer: CeleryTaskObserver, interval_seconds: float,
                          should_stop: Callable[[], bool] = lambda: False) -> None:  # fmt: skip
    """Receive task events from `app`'s broker until `should_stop()` says so, flushing the
    observer's reports every `interval_seconds` (and once more at the end)."""
    next_flush = time.monotonic() + interval_seconds
    with app.connection_for_read(broker_url) as connection:
        receiver = app.events.Receiver(connection, handlers={"*": observer.on_event})

        def on_iteration() -> None:  # called at least once a second by kombu's consume loop
            nonlocal next_flush
            if time.monotonic() >= next_flush:
                observer.flush()
                next_flush = time.monotonic() + interval_seconds
            if should_stop():
                receiver.should_stop = True

        receiver.on_iteration = on_iteration
        try:
            for _ in receiver.itercapture(limit=None, timeout=None, wakeup=True):
                on_iteration()
                if receiver.should_stop:
                    break
        finally:
            observer.flush()
