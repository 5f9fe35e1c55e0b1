"""Replay: dead letters republished per second by a named replay with the velocity cap off, on
Google's Pub/Sub emulator through the real adapter.

2000 dead letters (100 with --quick) are published to a class's dead-letter topic the way the worker
kit does, mirrored by the real sync, then replayed by the action engine in this process at the
highest velocity a replay may ask for, with the cap off (the engine's wait between chunks does
nothing), so the figure is what one worker can do: each chunk of 500 reads its rows, publishes
their messages as one client batch, awaits the futures together and marks the rows, and the
chunk's step records are written while the next chunk's messages are in flight. Baselines, same
client, same messages, same run: a plain publish of all of them at once (the client batches), and
the same publish one message at a time, each waited for (the floor a step cannot go below).

Rounds (5, 1 with --quick) alternate which of the replay and the plain publish goes first, and
each figure is the median over the rounds: on a shared machine the load drifts within seconds,
and one pair alone measured that drift as often as the code. Between rounds the rows are set back
to new (as the mirror left them), so every round replays the same 2000 dead letters.
"""

from __future__ import annotations

import json
import time

from bench.common import Result, Target, emulator_missing, emulator_queue, make_classes, median, reset_tables

SIGNATURE = "sig-bench-replay"


def _dead_letter(n: int, slug: str):
    from workloads.providers.base import (
        ATTR_ATTEMPTS,
        ATTR_CLASS,
        ATTR_ERROR_MESSAGE,
        ATTR_ERROR_SIGNATURE,
        ATTR_ERROR_TYPE,
        ATTR_IDEMPOTENCY_KEY,
        OutboundMessage,
    )

    payload = {"tenant_id": "bench", "document_id": f"doc-{n}", "revision": 1}
    return OutboundMessage(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode(),
        {
            ATTR_CLASS: slug,
            ATTR_IDEMPOTENCY_KEY: f"bench:doc-{n}:1",
            ATTR_ERROR_TYPE: "Unavailable",
            ATTR_ERROR_MESSAGE: "backend unavailable",
            ATTR_ERROR_SIGNATURE: SIGNATURE,
            ATTR_ATTEMPTS: "5",
        },
    )


def _mirror(workload_class, count: int, *, timeout: float = 120.0) -> None:
    from django.utils import timezone

    from workloads.models import DeadLetter
    from workloads.services.deadletter_mirror import dead_letters_sync

    deadline = time.monotonic() + timeout
    while DeadLetter.objects.filter(workload_class=workload_class).count() < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {DeadLetter.objects.count()} of {count} dead letters mirrored in {timeout:g} s")
        dead_letters_sync(now=timezone.now())


def _replay_once(workload_class, count: int) -> float:
    """Seconds of one named replay of the class's dead letters, run by the action engine."""
    from workloads.models import ActionState
    from workloads.services.actions import action_run
    from workloads.services.deadletters import MAX_REPLAY_VELOCITY, DeadLetterFilter, replay_request

    action = replay_request(
        actor=None,
        selection=DeadLetterFilter(workload_class=workload_class, error_signature=SIGNATURE),
        enqueue=False,
        name="bench replay",
        velocity=MAX_REPLAY_VELOCITY,  # the largest chunks; the engine's wait is off below
        confirm_count=count,  # every dead letter of the class: the bulk guard asks for the count
    )
    started = time.perf_counter()
    action = action_run(action_id=action.pk, sleep=lambda seconds: None)  # the velocity cap, off
    took = time.perf_counter() - started
    if action is None or action.state != ActionState.SUCCEEDED or action.progress_done != count:
        raise RuntimeError(f"the replay ended {action and action.state}: {action and action.error}")
    return took


def _rows_back_to_new(workload_class) -> None:
    """The class's dead letters as the mirror left them, before any replay."""
    from workloads.models import DeadLetter, DeadLetterStatus

    DeadLetter.objects.filter(workload_class=workload_class).update(
        status=DeadLetterStatus.NEW, replayed_message_id="", replayed_at=None, replay_action=None, replay_count=0
    )


def run(args) -> list[Result]:
    from workloads.models import DeadLetter
    from workloads.providers import set_providers
    from workloads.providers.base import Providers
    from workloads.providers.specs import queue_spec
    from workloads.services.deadletters import replay_message

    count, rounds = (100, 1) if args.quick else (2000, 5)
    queue = emulator_queue()
    if queue is None:
        return [Result("replay: dead letters republished, cap off", None, "msg/s", skipped=emulator_missing())]
    reset_tables()
    set_providers(Providers(queue=queue, pools=None, metrics=None, name="gcp"))
    try:
        [workload_class] = make_classes(1, prefix="replay", slos=False)
        spec = queue_spec(workload_class)
        queue.ensure_resources(spec)
        queue.publish(spec, [_dead_letter(n, workload_class.slug) for n in range(count)], topic=spec.dead_letter_topic)
        _mirror(workload_class, count)
        rows = DeadLetter.objects.filter(workload_class=workload_class).select_related("workload_class")
        messages = [replay_message(row) for row in rows.order_by("last_seen", "pk")]

        started = time.perf_counter()
        for message in messages:
            queue.publish(spec, [message])
        one_by_one = time.perf_counter() - started

        replayed, batched = [], []
        for round_number in range(rounds):
            if round_number:
                _rows_back_to_new(workload_class)
            replay_first = round_number % 2 == 0
            if replay_first:
                replayed.append(_replay_once(workload_class, count))
            started = time.perf_counter()
            queue.publish(spec, messages)
            batched.append(time.perf_counter() - started)
            if not replay_first:
                replayed.append(_replay_once(workload_class, count))
    finally:
        set_providers(None)
    note = f"{count} dead letters; one worker, chunks in order; median of {rounds} alternating rounds"
    return [
        Result(
            "replay: dead letters republished, cap off",
            count / median(replayed),
            "msg/s",
            baseline=count / median(batched),
            baseline_name="plain publish of the same messages, same client (batched by the client)",
            target=Target(">=", 0.25),
            note=note,
            extra={"replay_seconds": replayed, "plain_publish_seconds": batched},
        ),
        Result(
            "replay: vs publishing one at a time",
            count / median(replayed),
            "msg/s",
            baseline=count / one_by_one,
            baseline_name="plain publish of the same messages one at a time, each waited for",
        ),
    ]
