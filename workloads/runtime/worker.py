"""The Worker: turns a class's handler into the message handler given to `Queue.consume`.

For each delivery: decode and validate the payload, skip a unit whose idempotency key already
completed, run the handler under the class's timeout tier, then settle:
- success: record the result (and publish the completion event), ack;
- transient failure or timeout before the last delivery attempt: record it, nack with a jittered
  exponential delay (`retry_delay`);
- permanent failure, invalid payload, or any failure on the last attempt: publish a copy to the
  class's dead-letter topic with the error attributes, record it, ack. Pub/Sub's own
  dead-lettering after max attempts stays the backstop for workers that crash.

Timeouts. A Python thread cannot be killed, so each handler call runs in its own thread and the
worker waits for it until the deadline. Past it, the attempt is settled as a timeout failure, its
result discarded, `context.cancelled` set (a handler can check it and stop early), and the stray
thread is left to finish on its own. The stray keeps holding its concurrency slot until it really
ends: handler bodies running at once, strays included, never exceed the class's max concurrency,
so a hung handler shrinks the instance's capacity instead of silently overcommitting it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.utils import timezone

from workloads.domain.payloads import normalize_and_validate
from workloads.models import WorkOutcome
from workloads.providers.base import (
    ATTR_ATTEMPTS,
    ATTR_ERROR_MESSAGE,
    ATTR_ERROR_SIGNATURE,
    ATTR_ERROR_TYPE,
    ATTR_IDEMPOTENCY_KEY,
    ATTR_INGESTED_AT,
    ATTR_REPLAY_COUNT,
    ATTR_TRACE_ID,
    Disposition,
    OutboundMessage,
    Providers,
    QueueSpec,
    ReceivedMessage,
)
from workloads.providers.limits import MAX_ATTRIBUTE_VALUE_BYTES, truncate_utf8
from workloads.providers.specs import queue_spec
from workloads.runtime.context import CostMeter, CostRates, WorkContext
from workloads.runtime.errors import (
    HandlerTimeout,
    Kind,
    PayloadInvalid,
    classify,
    error_message,
    error_signature,
    error_type,
    printable,
)
from workloads.runtime.registry import Handler
from workloads.runtime.reporting import Reporter
from workloads.runtime.results import ResultWriter, Settled
from workloads.validation import render_key_template

logger = logging.getLogger(__name__)

SLOT_POLL_SECONDS = 0.1
# At most this much of the shutdown grace is kept for the final metrics report (a quarter when the
# grace is shorter).
FINAL_REPORT_MAX_SECONDS = 2.0


def retry_delay(
    *, attempt: int, min_backoff: float, max_backoff: float, jitter: bool = True, rng: random.Random | None = None
) -> float:
    """Seconds to wait before redelivering after failed delivery `attempt` (1-based).

    With jitter ("full jitter", AWS Architecture Blog, "Exponential Backoff and Jitter"): uniform
    between the class's min backoff and an exponential ceiling, min_backoff * 2 ** attempt capped at
    max_backoff. The min backoff stays a floor because it is the class's promise to its backends
    ("never sooner than this"), as in Pub/Sub's retry policy; the jitter spreads a burst of
    failures over the whole range above it. Without jitter: min_backoff * 2 ** (attempt - 1),
    capped, which is exactly Pub/Sub's retry policy. A class with min backoff 0 grows from 1 s.
    """
    if max_backoff <= 0:
        return 0.0
    base = min_backoff if min_backoff > 0 else 1.0
    exponent = max(0, attempt - (0 if jitter else 1))
    ceiling = min(float(max_backoff), base * 2.0 ** min(exponent, 32))
    if not jitter:
        return max(float(min_backoff), ceiling)
    low = min(float(min_backoff), ceiling)
    return (rng or random).uniform(low, ceiling)


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker needs from its WorkloadClass, read once at start (no ORM in the hot path)."""

    workload_class_id: int
    slug: str
    spec: QueueSpec
    worker_pool: str
    timeout_seconds: float
    max_concurrency: int
    max_delivery_attempts: int
    min_backoff_seconds: int
    max_backoff_seconds: int
    jitter: bool
    dedup_ttl_seconds: int
    payload_schema: dict
    idempotency_key_template: str
    rates: CostRates


def worker_config(workload_class, **overrides) -> WorkerConfig:
    rates = workload_class.cost_rates
    values: dict[str, Any] = dict(
        workload_class_id=workload_class.pk,
        slug=workload_class.slug,
        spec=queue_spec(workload_class),
        worker_pool=workload_class.worker_pool,
        timeout_seconds=workload_class.timeout.total_seconds(),
        max_concurrency=workload_class.max_concurrency,
        max_delivery_attempts=workload_class.max_delivery_attempts,
        min_backoff_seconds=workload_class.min_backoff_seconds,
        max_backoff_seconds=workload_class.max_backoff_seconds,
        jitter=workload_class.backoff_jitter,
        dedup_ttl_seconds=workload_class.dedup_ttl_seconds,
        payload_schema=workload_class.payload_schema,
        idempotency_key_template=workload_class.idempotency_key_template,
        rates=CostRates(per_record=rates.per_record, per_1k_tokens=rates.per_1k_tokens) if rates else CostRates(),
    )
    values.update(overrides)
    return WorkerConfig(**values)


class _Run:
    """One handler call in its own thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.finished = False
        self.abandoned = False
        self.result: Any = None
        self.error: BaseException | None = None


class _KeyLocks:
    """Deliveries of one idempotency key in this process run one after the other, so a duplicate
    that arrives while the first is running waits and is then skipped instead of running twice.
    (Across processes the result writer's unique constraint still records a single success.)"""

    def __init__(self):
        self._lock = threading.Lock()
        self._locks: dict[str, list] = {}  # key -> [lock, users]

    @contextmanager
    def hold(self, key: str):
        with self._lock:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        *,
        handler: Handler,
        providers: Providers,
        instance_id: str = "",
        using: str = "default",
        rng: random.Random | None = None,
        now: Callable[[], datetime] = timezone.now,
    ):
        self.config = config
        self.handler = handler
        self.queue = providers.queue
        self.instance_id = instance_id
        self.results = ResultWriter(
            workload_class_id=config.workload_class_id,
            spec=config.spec,
            queue=providers.queue,
            dedup_ttl_seconds=config.dedup_ttl_seconds,
            instance_id=instance_id,
            using=using,
            now=now,
        )
        self.reporter = Reporter(
            metrics=providers.metrics,
            slug=config.slug,
            worker_pool=config.worker_pool,
            instance_id=instance_id,
            now=now,
        )
        self._rng = rng or random.Random()
        self._now = now
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._key_locks = _KeyLocks()
        self._stop = threading.Event()
        self._hand_back = threading.Event()  # the shutdown grace ran out: give in-flight messages back
        self._lock = threading.Lock()
        self._connections: list = []  # database connections of the threads that settled messages
        self.strays = 0  # timed-out handler threads still running
        self.report_dropped = False  # the final report was given up on, its thread still retrying
        self.settled: Counter[str] = Counter()  # outcome -> deliveries, for logs and tests

    # --- running ---------------------------------------------------------------------------------
    def run(
        self,
        stop: threading.Event,
        *,
        report_interval_seconds: float = 60.0,
        grace_seconds: float | None = None,
    ) -> None:
        """Consume until `stop` is set, then stop pulling at once. Without `grace_seconds`,
        in-flight units finish (each within its timeout) and the last metrics are flushed however
        long that takes. With it, the whole shutdown fits in the grace (Cloud Run kills an instance
        10 s after SIGTERM): in-flight units may finish until the last part of it, which is kept for
        the final metrics report; units still running then are handed back (nacked, so Pub/Sub
        redelivers them; their results would be discarded) and a final report that has not gone
        through by the end is dropped, not retried."""
        self._stop = stop
        report_budget = None if grace_seconds is None else min(FINAL_REPORT_MAX_SECONDS, grace_seconds / 4)
        if grace_seconds is not None:
            threading.Thread(
                target=self._hand_back_after, args=(stop, grace_seconds - report_budget), daemon=True
            ).start()
        reporter_stop = threading.Event()
        reporter = threading.Thread(
            target=self.reporter.run,
            args=(reporter_stop,),
            kwargs={"interval_seconds": report_interval_seconds},
            name=f"report-{self.config.slug}",
            daemon=True,
        )
        reporter.start()
        try:
            self.queue.consume(self.config.spec, self.handle, max_concurrency=self.config.max_concurrency, stop=stop)
        finally:
            reporter_stop.set()
            if report_budget is None:
                reporter.join(timeout=30)
                self.reporter.flush()
            else:
                self._final_report_within(report_budget)
            self._close_connections()

    def _hand_back_after(self, stop: threading.Event, seconds: float) -> None:
        stop.wait()
        if not self._hand_back.wait(max(0.0, seconds)):
            logger.info("%s: the shutdown grace is running out; handing in-flight work back", self.config.slug)
            self._hand_back.set()

    def _final_report_within(self, seconds: float) -> None:
        """Flush the last metrics in a thread of its own and wait for it at most `seconds`: with the
        metrics endpoint unreachable its retries would outlast the instance."""
        flushed = threading.Event()

        def flush() -> None:
            try:
                self.reporter.flush()
            finally:
                flushed.set()

        threading.Thread(target=flush, name=f"final-report-{self.config.slug}", daemon=True).start()
        if not flushed.wait(seconds):
            self.report_dropped = True
            logger.warning(
                "%s: the final metrics report did not go through within %.1f s; it is dropped",
                self.config.slug,
                seconds,
            )

    def _close_connections(self) -> None:
        """Close the database connections the consumer's threads opened to settle messages. The
        local queue's threads close their own; a client library's thread pool (Pub/Sub) does not
        know about Django, and its idle threads would hold their connections until collected.
        Those threads are done by now (consume returned), so closing from here is safe."""
        with self._lock:
            used, self._connections = self._connections, []
        for connection in used:
            connection.inc_thread_sharing()
            try:
                connection.close()
            finally:
                connection.dec_thread_sharing()
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:  # the caller's thread may end right after
                connection.close()

    def handle(self, message: ReceivedMessage) -> Disposition:
        """The MessageHandler: never raises; a failure of the kit itself (database or queue down
        while settling) nacks the message with backoff, so it comes back."""
        connection = connections[self.results.using]
        # No request cycle here: drop a connection that broke or outlived CONN_MAX_AGE, as Django
        # does between requests, so a database restart costs one failed delivery, not all of them.
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
        with self._lock:
            if not any(seen is connection for seen in self._connections):
                self._connections.append(connection)
        try:
            return self._handle(message)
        except Exception as exc:
            attempt = max(1, message.delivery_attempt)
            delay = self._delay(attempt)
            logger.exception(
                "%s: could not settle message %s (attempt %d); it comes back in %.1f s: %s",
                self.config.slug,
                message.message_id,
                attempt,
                delay,
                exc,
            )
            return Disposition.nack(delay)

    # --- one delivery ------------------------------------------------------------------------------
    def _handle(self, message: ReceivedMessage) -> Disposition:
        attempt = max(1, message.delivery_attempt)
        key = message.attributes.get(ATTR_IDEMPOTENCY_KEY, "")
        try:
            payload = self._decode(message)
        except PayloadInvalid as exc:
            return self._failed(message, key or message.message_id, attempt, exc, meter=CostMeter())
        if not key:  # published around ingestion: derive the key as ingestion would
            try:
                key = render_key_template(self.config.idempotency_key_template, payload)[:255]
            except (KeyError, IndexError, ValueError):
                key = message.message_id
        with self._key_locks.hold(key):
            if self.results.already_completed(key):
                self.results.record(self._settled(WorkOutcome.SKIPPED_DUPLICATE, message, key, attempt))
                self._count(WorkOutcome.SKIPPED_DUPLICATE)
                return Disposition.ack()
            meter = CostMeter()
            run = self._execute(payload, message, key, attempt, meter)
            if run is None:  # stopping before a slot came free, or handed back at the end of the grace
                return Disposition.nack()
            if run.error is not None:
                return self._failed(message, key, attempt, run.error, meter=meter)
            return self._succeeded(message, key, attempt, run.result, meter)

    def _decode(self, message: ReceivedMessage) -> dict:
        try:
            payload = json.loads(message.data)
        except ValueError as exc:  # UnicodeDecodeError is a ValueError
            raise PayloadInvalid(f"The message data is not JSON: {exc}") from None
        checked = normalize_and_validate(payload, self.config.payload_schema)
        if not checked.ok:
            problems = "; ".join(f"{e.field or '(payload)'}: {e.message}" for e in checked.errors)
            raise PayloadInvalid(f"The payload does not match the class schema: {problems}")
        return checked.payload

    def _execute(
        self, payload: dict, message: ReceivedMessage, key: str, attempt: int, meter: CostMeter
    ) -> _Run | None:
        """Run the handler in its own thread until it returns or the timeout tier runs out."""
        while not self._slots.acquire(timeout=SLOT_POLL_SECONDS):
            if self._stop.is_set():
                return None
        timeout = self.config.timeout_seconds
        context = WorkContext(
            slug=self.config.slug,
            message_id=message.message_id,
            attempt=attempt,
            idempotency_key=key,
            trace_id=message.attributes.get(ATTR_TRACE_ID, ""),
            deadline=self._now() + timedelta(seconds=timeout),
            deadline_monotonic=time.monotonic() + timeout,
            meter=meter,
        )
        run = _Run()

        def target() -> None:
            try:
                run.result = self.handler(payload, context)
            except BaseException as exc:  # noqa: BLE001 - a SystemExit in a handler is its failure too
                run.error = exc
            finally:
                self._slots.release()
                with run.lock:
                    run.finished = True
                    stray = run.abandoned
                if stray:
                    with self._lock:
                        self.strays -= 1
                connections.close_all()  # this thread's connections, if the handler opened any
                run.done.set()

        threading.Thread(target=target, name=f"handler-{self.config.slug}-{message.message_id}", daemon=True).start()
        give_up_at = time.monotonic() + timeout
        while not run.done.wait(max(0.0, min(SLOT_POLL_SECONDS, give_up_at - time.monotonic()))):
            if self._hand_back.is_set() or time.monotonic() >= give_up_at:
                break
        with run.lock:
            if not run.finished:
                run.abandoned = True
        if run.abandoned and self._hand_back.is_set():
            # Shutting down: the message goes back for another instance; this run's result, if it
            # ever comes, is discarded (never recorded), so the unit completes once, there.
            context.cancelled.set()
            with self._lock:
                self.strays += 1
            return None
        if run.abandoned:
            context.cancelled.set()
            with self._lock:
                self.strays += 1
            run.error = HandlerTimeout(
                f"The handler ran past the class's {timeout:g} s timeout; its result will be discarded."
            )
        return run

    # --- settling ------------------------------------------------------------------------------------
    def _succeeded(self, message: ReceivedMessage, key: str, attempt: int, result, meter: CostMeter) -> Disposition:
        records, tokens = meter.read()
        latency = self._latency(message)
        settled = self._settled(
            WorkOutcome.SUCCEEDED,
            message,
            key,
            attempt,
            latency_seconds=latency,
            records=records,
            tokens=tokens,
            cost_units=self.config.rates.cost(records, tokens),
        )
        summary = result if isinstance(result, dict) else None
        if self.results.record_success(settled, summary=summary):
            self.reporter.observe(completed=True, latency=latency, records=records, tokens=tokens)
            self._count(WorkOutcome.SUCCEEDED)
        else:
            self.reporter.observe(records=records, tokens=tokens)
            self._count(WorkOutcome.SKIPPED_DUPLICATE)
        return Disposition.ack()

    def _failed(
        self, message: ReceivedMessage, key: str, attempt: int, error: BaseException, *, meter: CostMeter
    ) -> Disposition:
        records, tokens = meter.read()
        kind = classify(error)
        etype = error_type(error)
        full_message = printable(str(error) or repr(error))  # hashable, storable, loggable
        signature = error_signature(etype, full_message)
        timed_out = isinstance(error, HandlerTimeout)
        last = attempt >= self.config.max_delivery_attempts
        if kind is Kind.PERMANENT or last:
            outcome = WorkOutcome.DEAD_LETTERED
            self._dead_letter(message, etype, error_message(error), signature, attempt)
            disposition = Disposition.ack()
            why = "permanent error" if kind is Kind.PERMANENT else f"attempt {attempt} was the last"
            logger.warning(
                "%s: dead-lettered message %s (key %s, %s): %s [%s] %s",
                self.config.slug,
                message.message_id,
                key,
                why,
                etype,
                signature,
                _one_line(full_message),
            )
        else:
            outcome = WorkOutcome.TIMED_OUT if timed_out else WorkOutcome.FAILED
            delay = self._delay(attempt)
            disposition = Disposition.nack(delay)
            logger.warning(
                "%s: attempt %d of message %s (key %s) failed, retry in %.1f s: %s [%s] %s",
                self.config.slug,
                attempt,
                message.message_id,
                key,
                delay,
                etype,
                signature,
                _one_line(full_message),
            )
        self.results.record(
            self._settled(
                outcome,
                message,
                key,
                attempt,
                latency_seconds=self._latency(message),
                records=records,
                tokens=tokens,
                cost_units=self.config.rates.cost(records, tokens),
                error_type=etype,
                error_message=error_message(error),
                error_signature=signature,
            )
        )
        self.reporter.observe(failed=True, records=records, tokens=tokens)
        self._count(outcome)
        return disposition

    def _dead_letter(self, message: ReceivedMessage, etype: str, text: str, signature: str, attempt: int) -> None:
        """Publish the copy before the original is acked: if this fails, the message is nacked and
        comes back, and Pub/Sub (or the local queue) dead-letters it after max attempts anyway."""
        attributes = {
            **message.attributes,
            ATTR_ERROR_TYPE: truncate_utf8(printable(etype)[:200], MAX_ATTRIBUTE_VALUE_BYTES),
            ATTR_ERROR_MESSAGE: text,
            ATTR_ERROR_SIGNATURE: signature,
            ATTR_ATTEMPTS: str(attempt),
        }
        copy = OutboundMessage(data=bytes(message.data), attributes=attributes, ordering_key=message.ordering_key)
        self.queue.publish(self.config.spec, [copy], topic=self.config.spec.dead_letter_topic)

    def _settled(self, outcome: WorkOutcome, message: ReceivedMessage, key: str, attempt: int, **fields) -> Settled:
        return Settled(
            outcome=outcome,
            message_id=message.message_id,
            idempotency_key=key,
            attempts=attempt,
            trace_id=message.attributes.get(ATTR_TRACE_ID, ""),
            **fields,
        )

    def _latency(self, message: ReceivedMessage) -> float | None:
        """Seconds from ingestion (cp-ingested-at, else the publish time) to now. A replayed
        message (cp-replay-count set) is measured from its replay, its own publish time: it keeps
        the original cp-ingested-at for tracing, but the days it waited as a dead letter are not
        the pipeline's latency and would spend the latency SLO's budget (docs/worker-kit.md)."""
        if message.attributes.get(ATTR_REPLAY_COUNT, "").strip() not in ("", "0"):
            started = message.publish_time
        else:
            started = _parse_time(message.attributes.get(ATTR_INGESTED_AT, "")) or message.publish_time
        if started is None:
            return None
        if timezone.is_naive(started):
            started = started.replace(tzinfo=UTC)
        return max(0.0, (self._now() - started).total_seconds())

    def _delay(self, attempt: int) -> float:
        return retry_delay(
            attempt=attempt,
            min_backoff=self.config.min_backoff_seconds,
            max_backoff=self.config.max_backoff_seconds,
            jitter=self.config.jitter,
            rng=self._rng,
        )

    def _count(self, outcome: WorkOutcome) -> None:
        with self._lock:
            self.settled[outcome.value] += 1


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
