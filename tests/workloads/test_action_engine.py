"""The action engine with small handlers defined here: claiming, step recording, resume after a
crash, transient vs permanent errors, partial failure, cancel, velocity, broker outage."""

from datetime import timedelta

import pytest
from django.utils import timezone

from workloads.errors import ApplicationError
from workloads.models import Action, ActionState, ActionStep, AuditEvent, StepState
from workloads.providers.base import ProviderError
from workloads.services import actions as engine

CALLS: list[str] = []


class ListHandler(engine.ActionHandler):
    """Steps are the action's `items`; an item's behaviour is in its name."""

    kind = "test_list"
    atomic_steps = False

    def plan(self, action):
        return [engine.PlannedStep(key=item) for item in action.parameters["items"]]

    def step_interval(self, action):
        return action.parameters.get("interval", 0)

    def run_step(self, action, step):
        CALLS.append(step.key)
        if step.key.startswith("denied"):
            raise ProviderError(f"permission denied on {step.key}", permanent=True, code="PERMISSION_DENIED")
        if step.key.startswith("refused"):
            raise ApplicationError(f"{step.key} is refused")
        if step.key.startswith("flaky") and CALLS.count(step.key) == 1:
            raise ProviderError("unavailable", permanent=False, code="UNAVAILABLE")
        if step.key.startswith("crash") and CALLS.count(step.key) == 1:
            raise SystemExit  # a worker killed mid-step: nothing after this line runs
        return {"did": step.key}


@pytest.fixture(autouse=True)
def handler():
    CALLS.clear()
    previous = engine._HANDLERS.get(ListHandler.kind)
    engine.register_handler(ListHandler())
    yield
    if previous is None:
        engine._HANDLERS.pop(ListHandler.kind, None)


def _request(operator, items, **parameters):
    return engine.action_request(
        kind="test_list",
        actor=operator,
        reason="test",
        target="things",
        parameters={"items": items, **parameters},
        enqueue=False,
    )


def test_a_successful_action_records_every_step_and_is_audited(operator):
    action = _request(operator, ["a", "b", "c"])
    assert action.state == ActionState.PENDING
    done = engine.action_run(action_id=action.pk)
    assert done.state == ActionState.SUCCEEDED
    assert (done.progress_done, done.progress_failed, done.progress_total, done.percent_done) == (3, 0, 3, 100)
    assert [s.result for s in done.steps.all()] == [{"did": "a"}, {"did": "b"}, {"did": "c"}]
    assert AuditEvent.objects.filter(action="action.test_list.request", actor=operator).exists()
    assert AuditEvent.objects.get(action="action.test_list.finish").result == "success"


def test_a_second_worker_cannot_claim_a_running_action(operator):
    action = _request(operator, ["a"])
    assert engine._claim(action.pk, worker="w1", now=timezone.now())
    assert engine.action_run(action_id=action.pk) is None
    assert CALLS == []


def test_a_crashed_workers_action_resumes_without_repeating_finished_steps(operator):
    action = _request(operator, ["a", "crash-b", "c"])
    with pytest.raises(SystemExit):
        engine.action_run(action_id=action.pk)
    action.refresh_from_db()
    assert action.state == ActionState.RUNNING and action.progress_done == 1
    assert engine.action_run(action_id=action.pk) is None  # the worker is presumed alive for a while
    later = timezone.now() + engine.STALE_AFTER + timedelta(seconds=1)
    Action.objects.filter(pk=action.pk).update(heartbeat_at=timezone.now() - engine.STALE_AFTER * 2)
    assert engine.actions_resume(now=later) == [action.pk]  # the resume tick finds it
    done = engine.action_run(action_id=action.pk)
    assert done.state == ActionState.SUCCEEDED and done.attempts == 2
    assert CALLS == ["a", "crash-b", "crash-b", "c"]  # a ran once; the interrupted step is retried


def test_permanent_errors_fail_only_their_step_and_the_summary_names_each(operator):
    action = _request(operator, ["pool-a", "denied-pool-b", "pool-c", "refused-d"])
    done = engine.action_run(action_id=action.pk)
    assert done.state == ActionState.PARTIALLY_FAILED
    assert done.error.startswith("2 of 4 done")
    assert "denied-pool-b: permission denied on denied-pool-b" in done.error
    assert "refused-d: refused-d is refused" in done.error
    assert AuditEvent.objects.get(action="action.test_list.finish").result == "failure"


def test_all_steps_failing_fails_the_action(operator):
    done = engine.action_run(action_id=_request(operator, ["denied-1", "denied-2"]).pk)
    assert done.state == ActionState.FAILED and done.error.startswith("2 of 2 failed")


def test_transient_errors_give_the_action_back_for_a_retry(operator):
    action = _request(operator, ["a", "flaky-b", "c"])
    with pytest.raises(ProviderError):
        engine.action_run(action_id=action.pk)
    action.refresh_from_db()
    assert action.state == ActionState.PENDING and "transient" in action.error
    done = engine.action_run(action_id=action.pk)
    assert done.state == ActionState.SUCCEEDED and done.error == ""
    assert CALLS == ["a", "flaky-b", "flaky-b", "c"]


def test_cancel_stops_between_steps(operator):
    action = _request(operator, ["a", "b", "c"])
    cancelled_after = []

    def sleep(seconds):
        if not cancelled_after:
            engine.action_cancel(action=action, actor=operator)
            cancelled_after.append(list(CALLS))

    action.parameters["interval"] = 0.01
    action.save()
    done = engine.action_run(action_id=action.pk, sleep=sleep)
    assert done.state == ActionState.CANCELLED
    assert CALLS == ["a"]
    assert list(done.steps.values_list("state", flat=True)) == [StepState.DONE, StepState.SKIPPED, StepState.SKIPPED]
    with pytest.raises(ApplicationError):
        engine.action_cancel(action=done, actor=operator)


def test_cancelling_a_pending_action_ends_it_at_once(operator):
    action = _request(operator, ["a"])
    assert engine.action_cancel(action=action, actor=operator).state == ActionState.CANCELLED
    assert engine.action_run(action_id=action.pk) is None and CALLS == []


def test_the_velocity_cap_spaces_steps(operator):
    slept = []
    action = _request(operator, ["a", "b", "c"], interval=0.5)
    engine.action_run(action_id=action.pk, sleep=slept.append)
    assert slept == [0.5, 0.5]


def test_unknown_kinds_are_refused_before_anything_is_written(operator):
    with pytest.raises(ApplicationError):
        engine.action_request(kind="no_such_kind", actor=operator)
    assert not Action.objects.exists()


def test_delayed_actions_wait_for_their_time(operator):
    action = engine.action_request(
        kind="test_list", actor=None, parameters={"items": ["a"]}, not_before=timezone.now() + timedelta(minutes=10)
    )
    assert engine.action_run(action_id=action.pk) is None
    assert engine.actions_resume(now=timezone.now()) == []
    assert engine.actions_resume(now=timezone.now() + timedelta(minutes=11)) == [action.pk]


def test_a_pending_action_that_was_never_started_is_sent_again(operator):
    # What happens after a broker outage swallowed the enqueue (the fault test with a real Redis
    # that goes down lives with the hardening tests).
    action = engine.action_request(kind="test_list", actor=operator, parameters={"items": ["a"]}, enqueue=False)
    assert engine.actions_resume(now=timezone.now()) == []  # too fresh: its own enqueue may be on the way
    later = timezone.now() + engine.PENDING_RETRY_AFTER + timedelta(seconds=1)
    assert engine.actions_resume(now=later) == [action.pk]


def test_steps_are_recorded_once_even_if_two_runs_race(operator):
    action = _request(operator, ["a"])
    engine._plan(action, ListHandler())
    step = ActionStep.objects.get(action=action)
    engine._record_steps(action, [step], [{}])
    with pytest.raises(engine._StepAlreadyRecorded):
        engine._record_steps(action, [step], [{}])
    action.refresh_from_db()
    assert action.progress_done == 1


def test_the_actions_api_lists_details_and_cancels(operator, viewer, client_as):
    action = _request(operator, ["a", "b"])
    as_viewer = client_as(viewer)
    listed = as_viewer.get("/api/v1/actions/?state=pending").json()
    assert [a["id"] for a in listed["results"]] == [action.pk]
    assert as_viewer.post(f"/api/v1/actions/{action.pk}/cancel/").status_code == 403
    response = client_as(operator).post(f"/api/v1/actions/{action.pk}/cancel/")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert client_as(operator).post(f"/api/v1/actions/{action.pk}/cancel/").status_code == 409


def test_the_steps_endpoint_pages_per_target_results(operator, client_as):
    action = _request(operator, ["a", "denied-b"])
    engine.action_run(action_id=action.pk)
    body = client_as(operator).get(f"/api/v1/actions/{action.pk}/steps/?state=failed").json()
    assert [(s["key"], s["state"]) for s in body["results"]] == [("denied-b", "failed")]


def test_a_requested_action_is_sent_to_the_celery_task_that_runs_it_by_its_registered_name():
    """The engine sends the task by name (services never import tasks): the name must be the task's."""
    from controlplane.celery import app

    app.loader.import_default_modules()  # what a worker does at start: autodiscovers the tasks
    assert engine.ACTION_RUN_TASK in app.tasks
    with app.connection_for_write() as connection:
        inbox = connection.SimpleQueue(app.conf.task_default_queue)
        inbox.clear()
        engine._enqueue(4242)
        message = inbox.get(timeout=5)
        message.ack()
        inbox.close()
    assert message.headers["task"] == engine.ACTION_RUN_TASK
    assert message.headers["argsrepr"] == "[4242]" or message.decode()[0] == [4242]
