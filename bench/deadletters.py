"""Dead-letter sync: one tick over 200 classes on Google's Pub/Sub emulator, as a share of the
tick's interval (DEAD_LETTER_SYNC_INTERVAL_SECONDS), through the real adapter and service.

200 classes (20 with --quick) get their topics and subscriptions on the emulator; one in ten has
5 dead letters waiting. Three ticks are timed:

- the first: every subscription is read (nothing is known yet), up to DEAD_LETTER_SYNC_CONCURRENCY
  at once; an empty read waits on Pub/Sub (about 1 s on the emulator);
- the next: the subscriptions found empty are skipped until their recheck; the ones that had dead
  letters are read again (and found drained);
- the first tick again, one subscription at a time (concurrency 1), on the first 20 classes only
  (all 200 would take minutes): the serial sync this replaces, the same-run baseline of its line.
"""

from __future__ import annotations

import json
import time

from bench.common import Result, Target, emulator_missing, emulator_queue, make_classes, reset_tables

WITH_DEAD_LETTERS_EVERY = 10
DEAD_LETTERS_EACH = 5
SERIAL_CLASSES = 20


def _dead_letter(n: int):
    from workloads.providers.base import ATTR_ERROR_SIGNATURE, ATTR_ERROR_TYPE, OutboundMessage

    body = json.dumps({"tenant_id": "bench", "document_id": f"doc-{n}", "revision": 1}).encode()
    return OutboundMessage(body, {ATTR_ERROR_TYPE: "Unavailable", ATTR_ERROR_SIGNATURE: "sig-bench-sync"})


def _tick(classes, *, concurrency: int) -> tuple[float, dict[str, int]]:
    from django.conf import settings
    from django.utils import timezone

    from workloads.services.deadletter_mirror import dead_letters_sync

    before = settings.DEAD_LETTER_SYNC_CONCURRENCY
    settings.DEAD_LETTER_SYNC_CONCURRENCY = concurrency
    try:
        started = time.perf_counter()
        counts = dead_letters_sync(now=timezone.now(), workload_classes=classes)
        return time.perf_counter() - started, counts
    finally:
        settings.DEAD_LETTER_SYNC_CONCURRENCY = before


def run(args) -> list[Result]:
    from django.conf import settings

    from workloads.models import DeadLetter, DeadLetterSyncState
    from workloads.providers import set_providers
    from workloads.providers.base import Providers
    from workloads.providers.specs import queue_spec

    count = 20 if args.quick else 200
    queue = emulator_queue()
    if queue is None:
        return [Result("deadletters: sync tick, 200 classes", None, "s", skipped=emulator_missing())]
    reset_tables()
    set_providers(Providers(queue=queue, pools=None, metrics=None, name="gcp"))
    try:
        classes = make_classes(count, prefix="dlsync", slos=False)
        for n, wc in enumerate(classes):
            spec = queue_spec(wc)
            queue.ensure_resources(spec)
            if n % WITH_DEAD_LETTERS_EVERY == 0:
                messages = [_dead_letter(n * 100 + i) for i in range(DEAD_LETTERS_EACH)]
                queue.publish(spec, messages, topic=spec.dead_letter_topic)
        concurrency = settings.DEAD_LETTER_SYNC_CONCURRENCY
        interval = float(settings.DEAD_LETTER_SYNC_INTERVAL_SECONDS)
        first, counts = _tick(classes, concurrency=concurrency)
        mirrored = DeadLetter.objects.count()
        steady, _ = _tick(classes, concurrency=concurrency)
        # The baseline: the same first tick, serially, on a few classes with nothing known yet.
        serial_classes = classes[: 5 if args.quick else SERIAL_CLASSES]
        DeadLetterSyncState.objects.all().delete()
        serial, _ = _tick(serial_classes, concurrency=1)
        parallel_again, _ = _tick(serial_classes, concurrency=concurrency)  # all known: mostly skipped
        DeadLetterSyncState.objects.all().delete()
        parallel_small, _ = _tick(serial_classes, concurrency=concurrency)
    finally:
        set_providers(None)
    expected = len(range(0, count, WITH_DEAD_LETTERS_EVERY)) * DEAD_LETTERS_EACH
    note = (
        f"{count} classes, {expected} dead letters in one class of {WITH_DEAD_LETTERS_EVERY} "
        f"({mirrored} mirrored by the first tick, {sum(counts.values())} acked); concurrency {concurrency}; "
        f"interval {interval:g} s"
    )
    return [
        Result(
            f"deadletters: sync tick, {count} classes, every subscription read",
            first,
            "s",
            baseline=interval,
            baseline_name="the tick's interval (DEAD_LETTER_SYNC_INTERVAL_SECONDS)",
            target=Target("<=", 0.25),
            note=note,
        ),
        Result(
            f"deadletters: sync tick, {count} classes, empty ones skipped",
            steady,
            "s",
            baseline=interval,
            baseline_name="the tick's interval",
            target=Target("<=", 0.25),
        ),
        Result(
            f"deadletters: parallel vs serial first tick, {len(serial_classes)} classes",
            parallel_small,
            "s",
            baseline=serial,
            baseline_name=f"the same tick reading one subscription at a time ({len(serial_classes)} classes)",
            note=f"a second tick right after, with what the first found: {parallel_again:.2f} s",
        ),
    ]
