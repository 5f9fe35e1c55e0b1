"""The action engine's chunked runs: steps planned by one INSERT ... SELECT (`plan_query`), and a
chunk's step records held back and written while the next chunk's calls are in flight
(`overlap_records`), then always written before the engine needs them: at the end, on a cancel,
on a transient error. A crash loses the held records only, and the resumed run gives those steps
to the handler again (a replay tells them done by their rows: test_replay*.py)."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.db.models.functions import JSONObject
from django.utils import timezone

from workloads.errors import ApplicationError
from workloads.models import Action, ActionState, AuditEvent, StepState
from workloads.providers.base import ProviderError
from workloads.services import actions as engine

CALLS: list[list[str]] = []
PROGRESS_SEEN: list[tuple[int, int]] = []  # per chunk: progress before and after write_held_records()


class ChunkHandler(engine.ActionHandler):
    """Chunks of two of the action's `items`, the records of one chunk written during the next."""

    kind = "test_chunks"
    overlap_records = True

    def plan_query(self, action):
        # The items as rows of a table: an audit event per item (written by _request below).
        return (
            AuditEvent.objects.filter(action="test.item", target_repr__in=action.parameters["items"])
            .order_by("-target_repr")  # step order is the query's order, here reverse alphabetical
            .annotate(step_key=F("target_repr"), step_payload=JSONObject(event=F("pk")))
        )

    def chunk_size(self, action):
        return 2

    def step_interval(self, action):
        return action.parameters.get("interval", 0)

    def run_steps(self, action, steps):
        keys = [step.key for step in steps]
        CALLS.append(keys)
        before = Action.objects.get(pk=action.pk).progress_done
        if any(key.endswith("crash") for key in keys) and CALLS.count(keys) == 1:
            raise SystemExit  # a worker killed before this chunk wrote the held records
        if any(key.startswith("flaky") for key in keys) and CALLS.count(keys) == 1:
            raise ProviderError("unavailable", permanent=False, code="UNAVAILABLE")
        engine.write_held_records()  # what a replay does while its messages are in flight
        PROGRESS_SEEN.append((before, Action.objects.get(pk=action.pk).progress_done))
        return [ApplicationError(f"{key} is refused") if key.startswith("refused") else {"did": key} for key in keys]


@pytest.fixture(autouse=True)
def handler():
    CALLS.clear()
    PROGRESS_SEEN.clear()
    engine.register_handler(ChunkHandler())
    yield
    engine._HANDLERS.pop(ChunkHandler.kind, None)


def _request(operator, items, **parameters):
    for item in items:
        AuditEvent.objects.create(action="test.item", target_repr=item, actor_label="test")
    return engine.action_request(
        kind="test_chunks", actor=operator, parameters={"items": items, **parameters}, enqueue=False
    )


def _states(action):
    return list(action.steps.order_by("position").values_list("key", "state"))


def test_steps_planned_by_a_query_are_numbered_in_its_order_with_their_keys_and_payloads(operator):
    action = _request(operator, ["a", "c", "b"])
    engine._plan(action, engine.handler_for("test_chunks"))
    action.refresh_from_db()
    events = {e.target_repr: e.pk for e in AuditEvent.objects.filter(action="test.item")}
    steps = list(action.steps.order_by("position").values_list("position", "key", "payload", "state", "result"))
    assert steps == [
        (0, "c", {"event": events["c"]}, StepState.PENDING, {}),
        (1, "b", {"event": events["b"]}, StepState.PENDING, {}),
        (2, "a", {"event": events["a"]}, StepState.PENDING, {}),
    ]
    assert (action.planned, action.progress_total) == (True, 3)


def test_a_chunks_records_are_written_while_the_next_chunk_runs_and_all_by_the_end(operator):
    done = engine.action_run(action_id=_request(operator, ["e", "d", "c", "b", "a"]).pk)
    assert CALLS == [["e", "d"], ["c", "b"], ["a"]]
    # Each chunk saw the chunk before it unrecorded, then recorded by its own call meanwhile.
    assert PROGRESS_SEEN == [(0, 0), (0, 2), (2, 4)]
    assert done.state == ActionState.SUCCEEDED and (done.progress_done, done.progress_total) == (5, 5)
    assert [s.result for s in done.steps.order_by("position")] == [{"did": k} for k in "edcba"]


def test_held_failures_count_as_failures(operator):
    done = engine.action_run(action_id=_request(operator, ["z", "x", "refused-y"]).pk)
    assert done.state == ActionState.PARTIALLY_FAILED and (done.progress_done, done.progress_failed) == (2, 1)
    assert "refused-y: refused-y is refused" in done.error


def test_a_cancel_writes_the_held_records_before_skipping_the_rest(operator):
    action = _request(operator, ["d", "c", "b", "a"], interval=0.01)

    def sleep(_seconds):
        engine.action_cancel(action=action, actor=operator)

    done = engine.action_run(action_id=action.pk, sleep=sleep)
    assert done.state == ActionState.CANCELLED and done.progress_done == 2
    assert _states(done) == [("d", "done"), ("c", "done"), ("b", "skipped"), ("a", "skipped")]


def test_a_transient_error_writes_the_held_records_before_giving_the_action_back(operator):
    action = _request(operator, ["z", "y", "flaky"])
    with pytest.raises(ProviderError):
        engine.action_run(action_id=action.pk)
    action.refresh_from_db()
    assert action.state == ActionState.PENDING and action.progress_done == 2
    done = engine.action_run(action_id=action.pk)
    assert done.state == ActionState.SUCCEEDED and done.progress_done == 3
    assert CALLS == [["z", "y"], ["flaky"], ["flaky"]]  # the recorded chunk is not run again


def test_a_crash_loses_only_the_held_records_and_the_resume_gives_those_steps_again(operator):
    action = _request(operator, ["d", "c", "b-crash", "a"])
    with pytest.raises(SystemExit):
        engine.action_run(action_id=action.pk)
    action.refresh_from_db()
    assert action.state == ActionState.RUNNING and action.progress_done == 0
    assert _states(action) == [("d", "pending"), ("c", "pending"), ("b-crash", "pending"), ("a", "pending")]
    Action.objects.filter(pk=action.pk).update(heartbeat_at=timezone.now() - engine.STALE_AFTER - timedelta(seconds=1))
    done = engine.action_run(action_id=action.pk)
    assert done.state == ActionState.SUCCEEDED and done.progress_done == 4
    assert CALLS == [["d", "c"], ["b-crash", "a"], ["d", "c"], ["b-crash", "a"]]
