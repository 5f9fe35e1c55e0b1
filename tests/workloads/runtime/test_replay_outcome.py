"""What a replay's messages did afterwards, followed through the real worker kit and dead-letter
mirror on the local provider: a replay that "succeeded" at publishing reports the messages that
were dead-lettered again, the ones a worker completed, and the ones with no outcome yet."""

from __future__ import annotations

import time

from django.utils import timezone

from workloads.models import DeadLetter, DeadLetterStatus, WorkResult
from workloads.providers import set_providers
from workloads.runtime.errors import PermanentError
from workloads.selectors.deadletters import DeadLetterFilter
from workloads.selectors.replays import replay_outcome
from workloads.services import actions as engine
from workloads.services import deadletters as dead_letter_services
from workloads.services.deadletter_mirror import dead_letters_sync

from .conftest import document, running, wait_for


class Handler:
    """Fails for good on the documents in `broken`; completes the others."""

    def __init__(self, broken: set[str]):
        self.broken = broken

    def __call__(self, payload, context):
        if payload["document_id"] in self.broken:
            raise PermanentError(f"no analyzer for {payload['document_id']}")
        return {"document_id": payload["document_id"]}


def _sync(workload_class) -> None:
    dead_letters_sync(now=timezone.now(), workload_classes=[workload_class])


def test_a_replay_reports_the_messages_that_were_dead_lettered_again_and_those_completed(local_setup, operator):
    setup = local_setup
    set_providers(setup.providers)
    try:
        wc = setup.make_class()
        handler = Handler(broken={"doc-1", "doc-2", "doc-3"})
        setup.publish(wc, [document(1), document(2), document(3)])
        with running(setup.worker(wc, handler)):
            wait_for(lambda: len(setup.results(wc, outcome="dead_lettered")), lambda n: n == 3)
        wait_for(lambda: (_sync(wc), DeadLetter.objects.filter(workload_class=wc).count())[1], lambda n: n == 3)

        handler.broken.discard("doc-3")  # the fix reached one of the three
        selection = DeadLetterFilter(workload_class=wc, ids=tuple(DeadLetter.objects.values_list("pk", flat=True)))
        replay = dead_letter_services.replay_request(actor=operator, selection=selection, enqueue=False)
        replay = engine.action_run(action_id=replay.pk, sleep=lambda s: None)
        assert replay.state == "succeeded" and replay.result["replayed"] == 3

        published = replay_outcome(replay)
        assert (published.published, published.pending, published.completed, published.dead_lettered_again) == (
            3,
            3,
            0,
            0,
        )
        assert published.tone == "pending" and published.summary() == "3 published, 3 pending"

        with running(setup.worker(wc, handler)):
            wait_for(lambda: replay_outcome(replay).pending, lambda n: n == 0)
        # The worker kit's results tell before the mirror has seen the new dead-letter copies.
        outcome = replay_outcome(replay)
        assert (outcome.completed, outcome.dead_lettered_again, outcome.pending) == (1, 2, 0)
        assert outcome.summary() == "3 published, 1 completed, 2 dead-lettered again"
        assert outcome.tone == "warn"

        _sync(wc)
        assert DeadLetter.objects.filter(workload_class=wc, status=DeadLetterStatus.NEW).count() == 2
        assert replay_outcome(replay) == outcome  # the mirror agrees
    finally:
        set_providers(None)


def test_a_replay_whose_every_message_came_back_is_bad_and_a_later_replay_takes_them_over(local_setup, operator):
    setup = local_setup
    set_providers(setup.providers)
    try:
        wc = setup.make_class()
        handler = Handler(broken={"doc-1", "doc-2"})
        setup.publish(wc, [document(1), document(2)])
        with running(setup.worker(wc, handler)):
            wait_for(lambda: len(setup.results(wc, outcome="dead_lettered")), lambda n: n == 2)
        wait_for(lambda: (_sync(wc), DeadLetter.objects.filter(workload_class=wc).count())[1], lambda n: n == 2)
        ids = tuple(DeadLetter.objects.values_list("pk", flat=True))

        first = dead_letter_services.replay_request(
            actor=operator, selection=DeadLetterFilter(workload_class=wc, ids=ids), enqueue=False
        )
        first = engine.action_run(action_id=first.pk, sleep=lambda s: None)
        with running(setup.worker(wc, handler)):
            wait_for(lambda: replay_outcome(first).pending, lambda n: n == 0)
        wait_for(
            lambda: (_sync(wc), DeadLetter.objects.filter(status=DeadLetterStatus.NEW).count())[1], lambda n: n == 2
        )
        # The mirror alone also tells (Pub/Sub's backstop dead-letters a crashed worker's message
        # with no result row): only the copies it mirrored remain to go by.
        WorkResult.objects.filter(workload_class=wc).delete()
        outcome = replay_outcome(first)
        assert outcome.summary() == "2 published, 2 dead-lettered again" and outcome.tone == "bad"

        time.sleep(0.01)
        second = dead_letter_services.replay_request(
            actor=operator, selection=DeadLetterFilter(workload_class=wc, ids=ids[:1]), enqueue=False
        )
        engine.action_run(action_id=second.pk, sleep=lambda s: None)
        assert replay_outcome(first).summary() == "2 published, 1 dead-lettered again, 1 replayed again later"
        assert replay_outcome(second).summary() == "1 published, 1 pending"
    finally:
        set_providers(None)
