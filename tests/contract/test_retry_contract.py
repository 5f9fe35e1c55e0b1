"""Retries keep the same promises on every provider: per-key order through a retry, and the
class's backoff applied once (docs/gcp.md, "Retries and backoff")."""

import threading
import time

from tests.contract.test_queue_contract import _consume_until
from workloads.providers.base import Disposition, OutboundMessage
from workloads.runtime.worker import retry_delay

# Redelivery after a delay of d seconds may come a little late (the emulator's and the local
# consumer's polling, a busy 2-core machine) but never early. Pub/Sub takes whole seconds for the
# delay (the ack deadline), so a delay of 1.3 s becomes 2 s: still inside [min, max]. The local
# consumer polls at most once a second while idle, hence up to about 1 s late.
EARLY_TOLERANCE = 0.1
LATE_TOLERANCE = 1.2


def test_a_failed_keyed_message_holds_its_key_until_its_retry_succeeds(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue(ordering=True, min_backoff_seconds=1, max_backoff_seconds=2)
    queue.publish(spec, [OutboundMessage(name.encode(), ordering_key="c3") for name in ("a", "b", "c")])
    lock = threading.Lock()
    seen = []

    def handler(message):
        name = message.data.decode()
        with lock:
            first_try_of_a = name == "a" and not any(entry[0] == "a" for entry in seen)
            seen.append((name, message.delivery_attempt, "fail" if first_try_of_a else "ok"))
        return Disposition.nack(1.0) if first_try_of_a else Disposition.ack()

    _consume_until(queue, spec, handler, done=lambda: len(seen) >= 4, max_concurrency=4)
    time.sleep(0.5)  # anything delivered out of order would show up right behind
    assert seen == [("a", 1, "fail"), ("a", 2, "ok"), ("b", 1, "ok"), ("c", 1, "ok")]


def _gaps_between_attempts(harness, *, ordering: bool):
    queue = harness.providers.queue
    spec = harness.ready_queue(ordering=ordering, min_backoff_seconds=1, max_backoff_seconds=2, max_delivery_attempts=5)
    queue.publish(spec, [OutboundMessage(b"flaky", ordering_key="k" if ordering else "")])
    arrivals = []

    def handler(message):
        arrivals.append(time.monotonic())
        if message.delivery_attempt >= 3:
            return Disposition.ack()
        # What the worker kit does after a transient failure: the class's jittered backoff.
        return Disposition.nack(retry_delay(attempt=message.delivery_attempt, min_backoff=1, max_backoff=2))

    _consume_until(queue, spec, handler, done=lambda: len(arrivals) >= 3, max_concurrency=1)
    return [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]


def test_the_backoff_between_attempts_stays_inside_the_class_range(harness):
    for ordering in (False, True):
        gaps = _gaps_between_attempts(harness, ordering=ordering)
        assert len(gaps) == 2
        for gap in gaps:
            assert 1 - EARLY_TOLERANCE <= gap <= 2 + LATE_TOLERANCE, (ordering, gaps)
