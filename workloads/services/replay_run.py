"""A replay's run: the action handler that republishes the selected dead letters in chunks
(services/deadletters.py has the rest: selection, preview, dry run, request, edit, discard).

The steps are dead-letter rows, run in chunks (at most REPLAY_CHUNK_SIZE, and half a second of
messages at the velocity cap). Each chunk reads its rows (one query, plain values), checks the
loop guard and the overlap guard, republishes their messages to the class's topic as one batch
(the client's batching, the futures awaited together) and marks the published rows replayed with
their new message ids (one statement); the engine records the chunk's steps in one statement,
on Pub/Sub while the next chunk's messages are in flight (`overlap_records`).

- Local provider: the publish is a row insert on the same database connection, so it commits or
  rolls back together with the chunk's record: a crash at any point publishes each message
  exactly once.
- Pub/Sub: the publish cannot join the transaction. A worker that dies after Pub/Sub accepted a
  chunk but before its rows were marked leaves its steps pending, and the resumed action publishes
  that chunk again (at most one chunk of duplicates per crash, with the same idempotency keys:
  the rows are marked before the next chunk is published). A crash may also lose the previous
  chunk's step records, held for the overlap: the resumed action finds those rows marked
  replayed by itself and records them done without publishing them again.
  The worker kit acks a message whose idempotency key already completed without running its
  handler, and its result rows are unique per key for successes, so the duplicates are absorbed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.db.models.functions import JSONObject
from django.utils import timezone

from workloads.errors import ApplicationError
from workloads.fastsql.reads import values_by_pks
from workloads.fastsql.writes import update_rows
from workloads.models import Action, ActionKind, ActionStep, DeadLetter, DeadLetterStatus, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.base import ProviderError
from workloads.providers.specs import queue_spec
from workloads.selectors.deadletters import DeadLetterFilter, dead_letters_to_act_on
from workloads.services.actions import ActionHandler, register_handler, write_held_records
from workloads.services.deadletters import (
    MAX_REPLAY_VELOCITY,
    REPLAY_CHUNK_SECONDS,
    replay_message,
    replay_refusal,
)


def _replayed(row: DeadLetter | ChunkRow) -> dict:
    return {"message_id": row.replayed_message_id, "replay_count": row.replay_count, "edited": row.is_edited}


@dataclass(slots=True)
class ChunkRow:
    """What a replay's chunk reads of one dead letter: the fields its checks and its message use
    (`replay_refusal`, `replay_message` and `_replayed` take a DeadLetter or one of these alike).
    Plain values, not model instances: loading 500 DeadLetters (all 37 fields, through the ORM)
    cost several times more than the query that reads them."""

    pk: int
    message_id: str
    status: str
    discarded_at: datetime | None
    discarded_by_label: str
    replay_action_id: int | None
    replayed_message_id: str
    replayed_at: datetime | None
    replay_count: int
    payload_truncated: bool
    payload_size: int
    payload_format: str
    payload: object
    payload_text: str
    edited_payload: object
    attributes: dict
    idempotency_key: str
    ordering_key: str
    workload_class: WorkloadClass | None = None

    @property
    def is_edited(self) -> bool:
        return self.edited_payload is not None


# The columns of a ChunkRow, in its fields' order (`id` is its `pk`).
CHUNK_COLUMNS = ("id", *(name for name in ChunkRow.__dataclass_fields__ if name not in ("pk", "workload_class")))


def _chunk_rows(workload_class: WorkloadClass, ids: list[int], *, lock: bool) -> dict[int, ChunkRow]:
    """{id: row} of the class's dead letters among `ids` (locked when `lock`), in one query."""
    found = values_by_pks(DeadLetter, CHUNK_COLUMNS, ids, where={"workload_class": workload_class.pk}, for_update=lock)
    return {values[0]: ChunkRow(*values, workload_class=workload_class) for values in found}


def _mark_replayed(action: Action, published: list[tuple[ChunkRow, str]]) -> None:
    if not published:
        return
    now = timezone.now()
    for row, message_id in published:
        row.status = DeadLetterStatus.REPLAYED
        row.replayed_message_id = message_id
        row.replayed_at = now
        row.replay_action_id = action.pk
        row.replay_count += 1
    update_rows(
        DeadLetter,
        ["status", "replayed_message_id", "replayed_at", "replay_action", "replay_count"],
        [(row.pk, row.status, message_id, now, action.pk, row.replay_count) for row, message_id in published],
    )


def _while_publishing(publish: Callable[[], object]) -> None:
    """Run `publish` and meanwhile write the engine's held step records of the previous chunk
    (`write_held_records`): the publish waits on Pub/Sub, the records on the database, so the two
    overlap. The publish gets a thread of its own and never touches the database there. A publish
    that joins the transaction (the local provider: a write on this thread's connection) runs
    here, alone (the engine holds no records back for atomic steps)."""
    if get_providers().queue.publish_joins_transaction:
        publish()
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            publish()
        except BaseException as exc:  # re-raised on the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name="replay-publish", daemon=True)
    thread.start()
    try:
        write_held_records()
    finally:
        thread.join()  # the rows it published are marked by the caller, whatever happened here
    if failure:
        raise failure[0]


def _republish(action: Action, rows: list[ChunkRow]) -> list[dict | ProviderError]:
    """Publish the rows' messages as one batch and mark the published rows replayed; one outcome
    per row. A transient failure propagates (the action is given back and retried) once the rows
    that were published are marked, so the retry does not publish them again."""
    published: dict[int, str] = {}  # position in rows -> message id, as the queue accepts them
    failure: ProviderError | None = None
    queue, spec = get_providers().queue, queue_spec(rows[0].workload_class)
    try:
        # The messages are built on the publish's side too: that Python runs while this thread
        # waits on the database.
        _while_publishing(
            lambda: queue.republish(spec, [replay_message(row) for row in rows], on_published=published.__setitem__)
        )
    except ProviderError as exc:
        if not exc.permanent:
            raise
        failure = exc
    finally:
        _mark_replayed(action, [(rows[n], message_id) for n, message_id in published.items()])
    if failure is None:
        return [_replayed(row) for row in rows]
    if len(rows) == 1:
        return [failure]
    # A message refused for good (too large, say) must not fail the others: one at a time.
    return [_replayed(row) if n in published else _republish(action, [row])[0] for n, row in enumerate(rows)]


class ReplayHandler(ActionHandler):
    kind = ActionKind.REPLAY
    # A chunk's step records are written while the next chunk's messages are in flight: a step
    # whose record a crash lost finds its row marked replayed by this action, and is done.
    overlap_records = True

    @property
    def atomic_steps(self) -> bool:
        """The publish and the rows' "replayed" mark commit together where the publish is a write
        to our own database (the local provider: exactly once). A publish over the network
        (Pub/Sub) never runs inside a transaction: the rows are marked in a statement of their own
        right after it, and a crash in between republishes that chunk (same idempotency keys,
        which the worker kit's completed-key check absorbs)."""
        return get_providers().queue.publish_joins_transaction

    def step_interval(self, action: Action) -> float:
        velocity = action.parameters.get("velocity")
        return 1.0 / float(velocity) if velocity else 0.0

    def plan_query(self, action: Action) -> QuerySet[DeadLetter]:
        """One step per selected dead letter, oldest first: its message id, and its row's id."""
        if action.workload_class is None:
            raise ApplicationError("The class of this replay was deleted.")
        selection = DeadLetterFilter.from_parameters(action.workload_class, action.parameters.get("filter") or {})
        rows = dead_letters_to_act_on(selection)
        if not selection.ids:
            # What matched when it was asked for: rows arriving later are a new decision.
            rows = rows.filter(last_seen__lte=action.created_at)
        return rows.order_by("last_seen", "pk").annotate(
            step_key=F("message_id"), step_payload=JSONObject(dead_letter_id=F("pk"))
        )

    def chunk_size(self, action: Action) -> int:
        """At most REPLAY_CHUNK_SECONDS of messages at the velocity cap (and REPLAY_CHUNK_SIZE): the
        engine waits for the chunk's share of the cap before the next one, so a chunk is the cap's
        largest burst."""
        velocity = float(action.parameters.get("velocity") or MAX_REPLAY_VELOCITY)
        return max(1, min(settings.REPLAY_CHUNK_SIZE, int(velocity * REPLAY_CHUNK_SECONDS)))

    def run_steps(self, action: Action, steps: list[ActionStep]) -> list[dict | ApplicationError]:
        """Publish a chunk's messages as one batch (the client's batching, futures awaited
        together), then mark their rows replayed, all in one statement per table."""
        by_id = _chunk_rows(
            action.workload_class,  # the action's, read once (not once per row)
            [step.payload["dead_letter_id"] for step in steps],
            lock=transaction.get_connection().in_atomic_block,  # atomic steps: hold the rows until the commit
        )
        outcomes: list = [None] * len(steps)
        to_publish: list[tuple[int, ChunkRow]] = []
        for index, step in enumerate(steps):
            row = by_id.get(step.payload["dead_letter_id"])
            if row is None:
                outcomes[index] = ApplicationError("The dead letter no longer exists (its class was deleted).")
            elif row.status == DeadLetterStatus.REPLAYED and row.replay_action_id == action.pk:
                # This action published and marked it, then died before recording the step (on
                # Pub/Sub those are separate transactions): done already, not to be published again.
                outcomes[index] = _replayed(row)
            elif refusal := replay_refusal(row, action=action):
                outcomes[index] = ApplicationError(refusal)
            else:
                to_publish.append((index, row))
        if to_publish:
            chunk_outcomes = _republish(action, [row for _, row in to_publish])
            for (index, _), outcome in zip(to_publish, chunk_outcomes, strict=True):
                outcomes[index] = outcome
        return outcomes

    def finish(self, action: Action) -> None:
        Action.objects.filter(pk=action.pk).update(
            result={**action.result, "replayed": action.progress_done, "refused": action.progress_failed}
        )


register_handler(ReplayHandler())
