"""The action engine: request, claim, plan, run step by step, finish, cancel, resume.

Each kind of action registers an `ActionHandler` that plans its steps and runs one step; the
engine owns everything else, identically for every kind:

- `action_request` writes the row and its audit event and enqueues the run after commit; if the
  broker is down the action simply stays pending and `actions_resume` picks it up later.
- `action_run` claims with a conditional UPDATE (two workers never run one action), plans once,
  then runs pending steps in order, recording each step's result before starting the next, so a
  crashed worker's action is resumed by the next without repeating finished steps. A handler
  that can do many steps in one go (a replay publishes a chunk of messages as one batch) takes
  them in chunks (`chunk_size`); a chunk's results are recorded together. Thousands of steps
  can be planned as a query (`plan_query`: one INSERT ... SELECT), and a handler that tells a
  step done by its effect may have a chunk's records written while the next chunk waits on the
  cloud (`overlap_records`).
- Transient provider errors release the claim and propagate, so the Celery task retries with
  backoff; permanent ones fail only that step with a readable message, and the action ends
  succeeded, partially failed or failed with a per-target summary.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import current_app
from django.db import connections, transaction
from django.db.models import (
    BigIntegerField,
    CharField,
    Count,
    F,
    JSONField,
    Q,
    QuerySet,
    TextField,
    Value,
    Window,
)
from django.db.models.functions import Left, RowNumber
from django.utils import timezone

from workloads.errors import ApplicationError
from workloads.fastsql.writes import insert_rows, update_rows
from workloads.models import Action, ActionState, ActionStep, AuditResult, StepState, WorkloadClass
from workloads.models.actions import FINAL_ACTION_STATES
from workloads.providers.base import ProviderError
from workloads.services.audit import audit_event_record

logger = logging.getLogger(__name__)

# A running action whose worker has not reported for this long is presumed dead and re-claimable;
# a live worker beats every HEARTBEAT_EVERY seconds, even inside a long step (an LRO wait).
STALE_AFTER = timedelta(minutes=2)
HEARTBEAT_EVERY = 20.0
# A pending action not started after this long (broker down, task lost) is enqueued again.
PENDING_RETRY_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class PlannedStep:
    key: str
    payload: dict = field(default_factory=dict)


class ActionHandler:
    """Subclass per action kind and register with `register_handler`."""

    kind: str = ""
    # Run each step and the recording of its result in one database transaction. True when the
    # step's own effect is a database write (it then commits together with its result, which is
    # what makes a step exactly-once); False for slow cloud calls such as waiting on an LRO.
    atomic_steps: bool = False
    # Let the engine hold a chunk's step records back and write them while the next chunk's cloud
    # calls are in flight (the handler calls `write_held_records()` meanwhile), so the two
    # overlap. A crash then loses up to one chunk's records, and their steps run again on resume:
    # only for a handler whose `run_steps` tells such a step is done already (a replay finds its
    # dead letter marked by this action) and never repeats its effect. Not with atomic_steps.
    overlap_records: bool = False

    # Minimum seconds between two steps (a velocity cap), read from the action's parameters. With
    # chunks, the engine waits this long per step of the previous chunk before the next one.
    def step_interval(self, action: Action) -> float:
        return 0.0

    # How many steps `run_steps` is given at once.
    def chunk_size(self, action: Action) -> int:
        return 1

    def plan(self, action: Action) -> list[PlannedStep]:
        raise NotImplementedError

    def plan_query(self, action: Action) -> QuerySet | None:
        """The steps as a query instead of a list, for handlers whose steps are rows of a table (a
        replay plans one step per dead letter, thousands): a queryset annotated with `step_key`
        (text) and `step_payload` (JSON), in step order. The engine numbers and inserts them
        with one INSERT ... SELECT, so no row passes through Python. None: `plan` is used."""
        return None

    def run_step(self, action: Action, step: ActionStep) -> dict:
        """Do one step; return its result (JSON). Raise ProviderError or ApplicationError to fail."""
        raise NotImplementedError

    def run_steps(self, action: Action, steps: list[ActionStep]) -> list[dict | ApplicationError | ProviderError]:
        """Do a chunk of steps (see `chunk_size`); return one outcome per step, in order: its result,
        or the ApplicationError or permanent ProviderError that failed that step alone. Raising
        fails the whole chunk (a transient ProviderError gives the action back, as for one step)."""
        return [self.run_step(action, step) for step in steps]

    def finish(self, action: Action) -> None:
        """Called once when every step has an outcome (before the final state is saved)."""

    def describe_failure(self, step: ActionStep) -> str:
        return f"{step.key}: {step.error}"

    def describe_outcome(self, action: Action, *, done: int, failed: int, total: int) -> str:
        """The head of the error summary of an action with failed steps ("3 of 4 pools paused")."""
        noun = action.get_kind_display().lower()
        if not done:
            return f"{failed} of {total} failed ({noun})"
        return f"{done} of {total} done ({noun})"


_HANDLERS: dict[str, ActionHandler] = {}


def register_handler(handler: ActionHandler) -> ActionHandler:
    _HANDLERS[handler.kind] = handler
    return handler


def handler_for(kind: str) -> ActionHandler:
    try:
        return _HANDLERS[kind]
    except KeyError:
        raise ApplicationError(f"No handler is registered for actions of kind {kind!r}.", code="unknown_kind") from None


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# The Celery task that runs an action, sent by name: services never import the tasks module.
ACTION_RUN_TASK = "workloads.tasks.action_run"


def _enqueue(action_id: int) -> None:
    """Send the run to Celery; a broker outage leaves the action pending for `actions_resume`."""
    try:
        current_app.send_task(ACTION_RUN_TASK, args=[action_id])
    except Exception:  # kombu raises many kinds of errors when the broker is unreachable
        logger.warning("could not enqueue action %s; it stays pending and will be retried", action_id, exc_info=True)


@transaction.atomic
def action_request(
    *,
    kind: str,
    actor,
    reason: str = "",
    workload_class: WorkloadClass | None = None,
    target: str = "",
    parameters: dict | None = None,
    name: str = "",
    not_before: datetime | None = None,
    enqueue: bool = True,
) -> Action:
    handler_for(kind)  # refuse unknown kinds before writing anything
    action = Action.objects.create(
        kind=kind,
        name=name[:120],
        workload_class=workload_class,
        target=target[:255],
        parameters=parameters or {},
        reason=reason,
        requested_by=actor if actor is not None and actor.pk else None,
        requested_by_label=actor.get_username() if actor is not None else "system",
        not_before=not_before,
    )
    audit_event_record(
        actor=actor,
        action=f"action.{kind}.request",
        target=action,
        target_repr=f"{action.get_kind_display()} {target}".strip(),
        workload_class_slug=workload_class.slug if workload_class else "",
        extra={"parameters": parameters or {}, "reason": reason},
    )
    if enqueue and (not_before is None or not_before <= timezone.now()):
        action_id = action.pk
        transaction.on_commit(lambda: _enqueue(action_id))
    return action


def _claim(action_id: int, *, worker: str, now: datetime) -> bool:
    claimed = Action.objects.filter(_claimable_q(now), pk=action_id).update(
        state=ActionState.RUNNING,
        claimed_by=worker,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
    )
    return claimed == 1


def _claimable_q(now: datetime):

    due = Q(not_before__isnull=True) | Q(not_before__lte=now)
    return (Q(state=ActionState.PENDING) & due) | Q(state=ActionState.RUNNING, heartbeat_at__lt=now - STALE_AFTER)


def _plan(action: Action, handler: ActionHandler) -> None:
    with transaction.atomic():
        locked = Action.objects.select_for_update().get(pk=action.pk)
        if locked.planned:
            return
        query = handler.plan_query(locked)
        if query is not None:
            total = _insert_steps_selected(locked, query)
        else:
            steps = handler.plan(locked)
            insert_rows(  # thousands of steps: bulk_create would take a second of Python
                ActionStep,
                _STEP_COLUMNS,
                [(locked.pk, i, s.key[:255], s.payload, StepState.PENDING, {}, "") for i, s in enumerate(steps)],
            )
            total = len(steps)
        Action.objects.filter(pk=locked.pk).update(planned=True, progress_total=total, started_at=timezone.now())


_STEP_COLUMNS = ["action", "position", "key", "payload", "state", "result", "error"]


def _insert_steps_selected(action: Action, query: QuerySet) -> int:
    """INSERT INTO the steps table the rows of `query` (see `ActionHandler.plan_query`), numbered
    from 0 in the query's order; returns how many. The SELECT is the ORM's own, with the step's
    constant columns as typed values, so each backend gets its own casts and JSON functions."""
    order = list(query.query.order_by) or ["pk"]
    selected = query.annotate(
        step_action=Value(action.pk, output_field=BigIntegerField()),
        step_position=Window(RowNumber(), order_by=order) - Value(1),
        step_key_cut=Left("step_key", 255),
        step_state=Value(StepState.PENDING, output_field=CharField()),
        step_result=Value({}, output_field=JSONField()),
        step_error=Value("", output_field=TextField()),
    ).values_list(
        "step_action", "step_position", "step_key_cut", "step_payload", "step_state", "step_result", "step_error"
    )
    select, params = selected.query.sql_with_params()
    connection = connections[selected.db]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(ActionStep._meta.get_field(name).column) for name in _STEP_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {quote(ActionStep._meta.db_table)} ({columns}) {select}", params)
        return cursor.rowcount


def _record_steps(action: Action, steps: list[ActionStep], outcomes: list) -> None:
    """Record each step's outcome (a result dict, or the error that failed it) and the progress."""
    now = timezone.now()
    rows = [
        (step.pk, StepState.FAILED, {}, outcome.message[:2000], now)
        if isinstance(outcome, Exception)
        else (step.pk, StepState.DONE, outcome or {}, "", now)
        for step, outcome in zip(steps, outcomes, strict=True)
    ]
    fields = ["state", "result", "error", "finished_at"]
    if update_rows(ActionStep, fields, rows, where={"state": StepState.PENDING}) != len(rows):
        # Someone else recorded them (a duplicate run): roll back ours (and our effect in atomic steps).
        raise _StepAlreadyRecorded()
    failed = sum(row[1] == StepState.FAILED for row in rows)
    Action.objects.filter(pk=action.pk).update(
        progress_done=F("progress_done") + len(steps) - failed,
        progress_failed=F("progress_failed") + failed,
        heartbeat_at=now,
    )


class _StepAlreadyRecorded(Exception):
    pass


def _record(action: Action, steps: list[ActionStep], outcomes: list) -> None:
    try:
        with transaction.atomic():
            _record_steps(action, steps, outcomes)
    except _StepAlreadyRecorded:
        pass


class _HeldRecords:
    """One chunk's step records held back (`ActionHandler.overlap_records`) until the next chunk's
    calls are in flight, or until the engine needs every step's state (the next step of its own,
    a cancel, the end, an error)."""

    def __init__(self):
        self.held: tuple[Action, list[ActionStep], list] | None = None

    def hold(self, action: Action, steps: list[ActionStep], outcomes: list) -> None:
        self.write()
        self.held = (action, steps, outcomes)

    def write(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            _record(*held)


# The records the running chunk's handler may write meanwhile (per thread: a worker may run
# several actions on threads of its own).
_writable = threading.local()


def write_held_records() -> None:
    """Write the previous chunk's held step records now (nothing when none are held). A handler
    with `overlap_records` calls it while its own chunk waits on the network, on this thread."""
    held = getattr(_writable, "held", None)
    if held is not None:
        held.write()


def _run_chunk(action: Action, handler: ActionHandler, steps: list[ActionStep], held: _HeldRecords) -> None:
    try:
        if handler.atomic_steps:
            with transaction.atomic():
                outcomes = handler.run_steps(action, steps)
                _record_steps(action, steps, outcomes)
        elif handler.overlap_records:
            _writable.held = held
            try:
                outcomes = handler.run_steps(action, steps)
            finally:
                _writable.held = None
            held.hold(action, steps, outcomes)
        else:
            outcomes = handler.run_steps(action, steps)
            _record(action, steps, outcomes)
    except _StepAlreadyRecorded:
        return
    except ProviderError as exc:
        if not exc.permanent:
            raise
        held.write()
        _record(action, steps, [exc] * len(steps))
    except ApplicationError as exc:
        held.write()
        _record(action, steps, [exc] * len(steps))


def _summary(action: Action, handler: ActionHandler) -> tuple[str, str]:
    # Counted in the database and only the first failures read: a replay can have many steps.
    counts = action.steps.aggregate(
        total=Count("pk"),
        done=Count("pk", filter=Q(state=StepState.DONE)),
        failed=Count("pk", filter=Q(state=StepState.FAILED)),
    )
    done, failed = counts["done"], counts["failed"]
    if not failed:
        return ActionState.SUCCEEDED, ""
    outcome = handler.describe_outcome(action, done=done, failed=failed, total=counts["total"])
    details = "; ".join(handler.describe_failure(s) for s in action.steps.filter(state=StepState.FAILED)[:5])
    more = f" (and {failed - 5} more)" if failed > 5 else ""
    if not done:
        return ActionState.FAILED, f"{outcome}: {details}{more}"
    return ActionState.PARTIALLY_FAILED, f"{outcome}; {details}{more}"


def _finish(action: Action, handler: ActionHandler, *, state: str | None = None, error: str = "") -> Action:
    action.refresh_from_db()
    if state is None:
        handler.finish(action)
        state, error = _summary(action, handler)
    with transaction.atomic():
        Action.objects.filter(pk=action.pk).update(state=state, error=error, finished_at=timezone.now())
        action.refresh_from_db()
        audit_event_record(
            actor=action.requested_by,
            action=f"action.{action.kind}.finish",
            target=action,
            target_repr=f"{action.get_kind_display()} {action.target}".strip(),
            workload_class_slug=action.workload_class.slug if action.workload_class_id else "",
            result=AuditResult.SUCCESS if state == ActionState.SUCCEEDED else AuditResult.FAILURE,
            extra={"state": state, "error": error, "done": action.progress_done, "failed": action.progress_failed},
        )
    return action


class _Heartbeat:
    """Keeps `heartbeat_at` fresh from a side thread while this worker holds the action."""

    def __init__(self, action_id: int, worker: str):
        self.action_id = action_id
        self.worker = worker
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name=f"action-{action_id}-heartbeat")

    def _beat(self) -> None:
        from django.db import connection

        try:
            while not self.stop.wait(HEARTBEAT_EVERY):
                Action.objects.filter(pk=self.action_id, claimed_by=self.worker, state=ActionState.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self.thread.join(timeout=5)


def action_run(*, action_id: int, sleep: Callable[[float], None] | None = None) -> Action | None:
    """Run (or resume) one action. Returns the action, or None when another worker has it."""
    sleep = sleep or time.sleep
    worker = _worker_id()
    if not _claim(action_id, worker=worker, now=timezone.now()):
        return None
    with _Heartbeat(action_id, worker):
        return _run_claimed(action_id, worker, sleep)


def _run_claimed(action_id: int, worker: str, sleep: Callable[[float], None]) -> Action:
    action = Action.objects.select_related("workload_class", "requested_by").get(pk=action_id)
    handler = handler_for(action.kind)
    held = _HeldRecords()
    try:
        _plan(action, handler)
        interval = handler.step_interval(action)
        size = max(1, handler.chunk_size(action))
        previous = 0  # steps in the chunk before: the velocity cap waits `interval` for each
        after = -1  # the position of the last step taken: steps are taken in order, once each
        while True:
            pending = ActionStep.objects.filter(action=action, state=StepState.PENDING, position__gt=after)
            steps = list(pending.order_by("position")[:size])
            if not steps:
                break
            if interval and previous:
                sleep(interval * previous)
            previous, after = len(steps), steps[-1].position
            action.refresh_from_db(fields=["cancel_requested"])
            if action.cancel_requested:
                held.write()
                ActionStep.objects.filter(action=action, state=StepState.PENDING).update(state=StepState.SKIPPED)
                return _finish(action, handler, state=ActionState.CANCELLED, error="Cancelled on request.")
            _run_chunk(action, handler, steps, held)
        held.write()
        return _finish(action, handler)
    except ProviderError as exc:
        _write_before_leaving(held, action_id)
        # Transient: give the action back so the task's retry (or the resume loop) claims it again.
        Action.objects.filter(pk=action_id, claimed_by=worker).update(
            state=ActionState.PENDING, error=f"Retrying after a transient error: {exc.message}"
        )
        raise
    except Exception as exc:
        logger.exception("action %s crashed", action_id)
        _write_before_leaving(held, action_id)
        return _finish(action, handler, state=ActionState.FAILED, error=f"Internal error: {exc}")


def _write_before_leaving(held: _HeldRecords, action_id: int) -> None:
    """The held records of a run that ends on an error: written if the database lets us (else
    their steps run again on resume, which their handler tells as done)."""
    try:
        held.write()
    except Exception:
        logger.warning("action %s: the last chunk's step records were not written", action_id, exc_info=True)


@transaction.atomic
def action_cancel(*, action: Action, actor) -> Action:
    action = Action.objects.select_for_update().get(pk=action.pk)
    if action.is_final:
        raise ApplicationError(f"Action #{action.pk} has already ended ({action.state}).", code="already_final")
    if action.state == ActionState.PENDING and not action.planned:
        Action.objects.filter(pk=action.pk).update(
            state=ActionState.CANCELLED,
            cancel_requested=True,
            finished_at=timezone.now(),
            error="Cancelled on request.",
        )
    else:
        Action.objects.filter(pk=action.pk).update(cancel_requested=True)
    audit_event_record(
        actor=actor,
        action=f"action.{action.kind}.cancel",
        target=action,
        workload_class_slug=action.workload_class.slug if action.workload_class_id else "",
    )
    action.refresh_from_db()
    return action


def actions_resume(*, now: datetime) -> list[int]:
    """Beat tick: enqueue pending actions that are due and were never started (broker outage,
    delayed triage) and running actions whose worker died. Safe to run twice: the claim decides."""
    due = Action.objects.filter(
        _claimable_q(now),
    ).exclude(state=ActionState.PENDING, created_at__gt=now - PENDING_RETRY_AFTER, not_before__isnull=True)
    ids = list(due.order_by("created_at").values_list("pk", flat=True)[:500])
    for action_id in ids:
        _enqueue(action_id)
    return ids


__all__ = [
    "FINAL_ACTION_STATES",
    "ActionHandler",
    "PlannedStep",
    "action_cancel",
    "action_request",
    "action_run",
    "actions_resume",
    "handler_for",
    "register_handler",
    "write_held_records",
]
