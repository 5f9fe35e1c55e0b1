"""Cloud Run answers UNAVAILABLE for a minute, starting in the middle of entering incident mode.

tests/workloads/test_incidents_gcp.py::test_an_outage_of_cloud_run_during_incident_mode_is_ridden_out
covers an outage from the first call of the enter and of the exit actions. This adds what it
leaves out: the outage begins after some pools were already paused, and lasts a minute of
(travelled) time, through several ticks of the resume loop, each one running the action again
into the outage. When Cloud Run is back the action finishes, and no pool was changed twice.

Time: the adapter's own retries give up after a fraction of a second (FAST, instead of a minute
in production), the minute itself is travelled with time-machine."""

from __future__ import annotations

from datetime import timedelta

import grpc
import time_machine
from django.utils import timezone

from tests.workloads.test_incidents_gcp import _counts, cloud  # noqa: F401  (the fixture)
from workloads.models import Action, ActionState, HoldState, PoolHold
from workloads.providers.base import ProviderError
from workloads.services import incidents as services
from workloads.services.actions import action_run, actions_resume

OUTAGE = timedelta(minutes=1)
TICK = timedelta(seconds=30)  # the beat interval of actions_resume


class Outage:
    """Every Cloud Run call fails with UNAVAILABLE from the `after`-th UpdateWorkerPool on, until
    `end` (in travelled time)."""

    def __init__(self, fake, *, after: int):
        self.fake, self.after, self.end = fake, after, None

    def take(self, method: str):
        updates = len(self.fake.calls("UpdateWorkerPool"))
        if self.end is None and method == "UpdateWorkerPool" and updates > self.after:
            self.end = timezone.now() + OUTAGE
        if self.end is not None and timezone.now() < self.end:
            return grpc.StatusCode.UNAVAILABLE
        return None


def test_unavailable_for_a_minute_from_the_middle_of_entering_incident(
    cloud,  # noqa: F811
    fake_cloud_run,
    operator,
    monkeypatch,
):
    before = _counts(fake_cloud_run, cloud)
    generations = {name: pool.generation for name, pool in fake_cloud_run.pools.items()}
    with time_machine.travel(timezone.now(), tick=False) as clock:
        outage = Outage(fake_cloud_run, after=2)
        monkeypatch.setattr(fake_cloud_run.faults, "take", outage.take)  # the fake lives for the session
        entered = services.incident_mode_enter(actor=operator, reason="regional outage")
        action_id = entered.incident.enter_action_id
        runs = 0
        while True:
            runs += 1
            try:
                finished = action_run(action_id=action_id)
                break
            except ProviderError as exc:
                assert exc.code == "UNAVAILABLE" and not exc.permanent
            assert Action.objects.get(pk=action_id).state == ActionState.PENDING  # given back, not failed
            assert runs < 10, "the action never finished"
            clock.shift(TICK)
            assert actions_resume(now=timezone.now()) == [action_id]
        assert outage.end is not None and timezone.now() >= outage.end

        assert finished.state == ActionState.SUCCEEDED and runs >= 3  # the outage outlived two ticks
        assert _counts(fake_cloud_run, cloud) == {**dict.fromkeys(before, 0), "policy-eval": 6}
        # Each deferrable pool was changed exactly once, however many times the action ran.
        changed = {name: pool.generation - generations[name] for name, pool in fake_cloud_run.pools.items()}
        assert sorted(changed.values()) == [0, 1, 1, 1, 1]
        holds = list(PoolHold.objects.select_related("workload_class"))
        assert {hold.state for hold in holds} == {HoldState.ACTIVE}
        assert {h.workload_class.slug: h.previous_count for h in holds} == {
            slug: count for slug, count in before.items() if slug != "policy-eval"
        }

        exit_action = services.incident_mode_exit(actor=operator).incident.exit_action
        assert action_run(action_id=exit_action.pk).state == ActionState.SUCCEEDED
        assert _counts(fake_cloud_run, cloud) == before
