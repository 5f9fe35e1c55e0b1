import json
import random
import statistics
from datetime import UTC, datetime

from workloads.models import WorkOutcome
from workloads.providers.base import ATTR_IDEMPOTENCY_KEY, Outcome, ReceivedMessage
from workloads.providers.local.queue import retry_backoff_seconds
from workloads.runtime.errors import TransientError
from workloads.runtime.worker import retry_delay

from .conftest import document


def test_delays_grow_with_the_attempt_and_are_jittered_over_the_whole_range():
    rng = random.Random(7)
    means = []
    for attempt in range(1, 7):
        ceiling = min(600, 10 * 2**attempt)
        samples = [retry_delay(attempt=attempt, min_backoff=10, max_backoff=600, rng=rng) for _ in range(2000)]
        assert all(10 <= delay <= ceiling for delay in samples)
        spread = ceiling - 10
        assert min(samples) < 10 + 0.02 * spread and max(samples) > ceiling - 0.02 * spread
        assert len(set(samples)) == len(samples)  # jittered: no two retries line up
        means.append(statistics.fmean(samples))
    assert means == sorted(means) and means[-1] > 10 * means[0]


def test_delays_never_pass_the_max_backoff():
    rng = random.Random(1)
    assert max(retry_delay(attempt=a, min_backoff=10, max_backoff=600, rng=rng) for a in range(1, 200)) <= 600
    assert retry_delay(attempt=3, min_backoff=0, max_backoff=0, rng=rng) == 0.0
    assert all(0 <= retry_delay(attempt=1, min_backoff=0, max_backoff=30, rng=rng) <= 2 for _ in range(100))


def test_without_jitter_the_delays_are_pubsubs_retry_policy():
    for attempt in range(1, 10):
        assert retry_delay(attempt=attempt, min_backoff=10, max_backoff=600, jitter=False) == retry_backoff_seconds(
            attempts=attempt, minimum=10, maximum=600
        )


def _delivery(attempt: int) -> ReceivedMessage:
    return ReceivedMessage(
        message_id=f"m-{attempt}",
        ack_id=f"ack-{attempt}",
        data=json.dumps(document(1)).encode(),
        attributes={ATTR_IDEMPOTENCY_KEY: "acme:doc-1:1"},
        ordering_key="",
        delivery_attempt=attempt,
        publish_time=datetime.now(UTC),
    )


def test_the_worker_nacks_transient_failures_with_growing_jittered_delays(local_setup):
    workload_class = local_setup.make_class(min_backoff_seconds=5, max_backoff_seconds=60, max_delivery_attempts=100)

    def unavailable(payload, context):
        raise TransientError("Backend unavailable (HTTP 503)")

    worker = local_setup.worker(workload_class, unavailable, rng=random.Random(3))
    for attempt in range(1, 6):
        delays = []
        for _ in range(8):
            disposition = worker.handle(_delivery(attempt))
            assert disposition.outcome is Outcome.NACK
            delays.append(disposition.delay_seconds)
        assert all(5 <= delay <= min(60, 5 * 2**attempt) for delay in delays), (attempt, delays)
        assert len(set(delays)) == len(delays)
    assert {r.outcome for r in local_setup.results(workload_class)} == {WorkOutcome.FAILED}
