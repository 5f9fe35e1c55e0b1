"""How the dead-letter sync reads many subscriptions: which ones this tick, and several at once.

- Which: a subscription the last sync found empty is skipped until DEAD_LETTER_SYNC_RECHECK_SECONDS
  have passed since that check, unless the telemetry poll has since seen dead letters waiting in
  it (its dead-letter backlog or oldest age above zero in a sample newer than the check). One row
  per class (`DeadLetterSyncState`) remembers the last check.
- Several at once: the Pub/Sub calls (peek, then ack and the next peek) run on up to
  DEAD_LETTER_SYNC_CONCURRENCY threads, while every database write stays in the calling thread,
  in the order batches arrive, each batch acked only after its rows committed. An empty peek on
  Pub/Sub waits up to PEEK_TIMEOUT (2 s), so a serial sync of 200 empty subscriptions took minutes;
  in parallel it takes a few of those waits. A queue kept in the database (the local provider)
  is read inline: its calls are queries on the same database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q

from workloads.models import ClassTelemetry, DeadLetterSyncState, WorkloadClass
from workloads.providers.base import ProviderError, Queue, QueueSpec, ReceivedMessage
from workloads.providers.specs import queue_spec

logger = logging.getLogger(__name__)

Mirror = Callable[[WorkloadClass, list[ReceivedMessage]], None]


def classes_due(classes: Iterable[WorkloadClass], *, now: datetime) -> list[WorkloadClass]:
    """The classes whose dead-letter subscription this tick reads, in the given order."""
    classes = list(classes)
    ids = [wc.pk for wc in classes]
    states = {state.workload_class_id: state for state in DeadLetterSyncState.objects.filter(workload_class_id__in=ids)}
    seen_waiting = {
        class_id: newest
        for class_id, newest in ClassTelemetry.objects.filter(workload_class_id__in=ids)
        .filter(Q(dead_letter_backlog__gt=0) | Q(dead_letter_oldest_age_seconds__gt=0))
        .values_list("workload_class_id", "newest_sample_at")
    }
    recheck = timedelta(seconds=settings.DEAD_LETTER_SYNC_RECHECK_SECONDS)
    due = []
    for wc in classes:
        state = states.get(wc.pk)
        newest = seen_waiting.get(wc.pk)
        if (
            state is None
            or not state.empty
            or now - state.checked_at >= recheck
            or (newest is not None and newest > state.checked_at)
        ):
            due.append(wc)
    return due


def record_checks(found: dict[int, bool], *, now: datetime) -> None:
    """Remember, per class id, whether this tick's check found its subscription empty."""
    DeadLetterSyncState.objects.bulk_create(
        [DeadLetterSyncState(workload_class_id=pk, checked_at=now, empty=empty) for pk, empty in found.items()],
        update_conflicts=True,
        unique_fields=["workload_class"],
        update_fields=["checked_at", "empty"],
    )


class _Inline:
    """An executor that runs each call at once in the caller's thread."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future, as a pool would
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


def drain(
    queue: Queue,
    classes: list[WorkloadClass],
    *,
    mirror: Mirror,
    batch_size: int,
    max_batches: int,
    concurrency: int,
) -> tuple[dict[str, int], dict[int, bool]]:
    """Mirror and ack up to `max_batches` batches of each class's dead letters. Returns the
    messages mirrored and acked per slug, and per class id whether its subscription was empty (a
    class whose read or write failed counts as not empty, so the next tick tries again)."""

    def first_peek(spec: QueueSpec) -> list[ReceivedMessage]:
        return queue.peek_dead_letters(spec, max_messages=batch_size)

    def ack_then_peek(spec: QueueSpec, ack_ids: list[str], more: bool) -> list[ReceivedMessage]:
        queue.ack_dead_letters(spec, ack_ids)
        return queue.peek_dead_letters(spec, max_messages=batch_size) if more else []

    threads = min(concurrency, len(classes))
    executor = _Inline() if queue.publish_joins_transaction or threads <= 1 else ThreadPoolExecutor(threads)
    counts = {wc.slug: 0 for wc in classes}
    empty = {wc.pk: True for wc in classes}
    # future -> (class, spec, peeks so far, messages that this future acks)
    pending: dict[Future, tuple[WorkloadClass, QueueSpec, int, int]] = {}
    try:
        for wc in classes:
            spec = queue_spec(wc)
            pending[executor.submit(first_peek, spec)] = (wc, spec, 1, 0)
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                wc, spec, peeks, acking = pending.pop(future)
                try:
                    messages = future.result()
                except ProviderError as exc:
                    logger.warning("dead-letter sync of %s stopped: %s", wc.slug, exc.message)
                    empty[wc.pk] = False
                    continue
                counts[wc.slug] += acking  # acked: only now are they out of the subscription
                if not messages:
                    continue
                empty[wc.pk] = False
                try:
                    mirror(wc, messages)
                except DatabaseError:
                    logger.exception("dead-letter sync of %s failed to write the mirror; nothing acked", wc.slug)
                    continue
                more = len(messages) >= batch_size and peeks < max_batches
                ack_ids = [m.ack_id for m in messages]
                pending[executor.submit(ack_then_peek, spec, ack_ids, more)] = (wc, spec, peeks + 1, len(messages))
    finally:
        executor.shutdown(wait=True)
    return counts, empty
