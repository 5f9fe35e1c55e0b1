"""The Worker consuming real queues: local provider (PostgreSQL, SQLite) and the Pub/Sub emulator."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from workloads.models import WorkOutcome
from workloads.providers.base import (
    ATTR_ATTEMPTS,
    ATTR_ERROR_MESSAGE,
    ATTR_ERROR_SIGNATURE,
    ATTR_ERROR_TYPE,
    ATTR_IDEMPOTENCY_KEY,
    MetricKind,
)
from workloads.providers.specs import metric_target, queue_spec
from workloads.runtime.errors import PermanentError, TransientError, error_signature

from .conftest import document, minutes_ago, running, wait_for


class Probe:
    """A handler that measures how many of its calls run at once."""

    def __init__(self, seconds: float = 0.0, fail=None):
        self.seconds = seconds
        self.fail = fail  # fail(payload, context) -> exception to raise, or None
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.calls: list[tuple[str, int]] = []  # (idempotency key, attempt)

    def __call__(self, payload, context):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.calls.append((context.idempotency_key, context.attempt))
        try:
            time.sleep(self.seconds)
            error = self.fail(payload, context) if self.fail else None
            if error is not None:
                raise error
            context.meter.add(records=2, tokens=300)
            return {"document_id": payload["document_id"]}
        finally:
            with self.lock:
                self.active -= 1


def test_concurrency_never_exceeds_the_class_bound(setup):
    workload_class = setup.make_class(max_concurrency=3)
    probe = Probe(seconds=0.15)
    setup.publish(workload_class, [document(n) for n in range(12)])
    with running(setup.worker(workload_class, probe)):
        wait_for(lambda: setup.results(workload_class, outcome=WorkOutcome.SUCCEEDED), lambda rows: len(rows) == 12)
    assert len(probe.calls) == 12
    # Measured: never above the bound, and the bound was reached (work did run concurrently).
    assert probe.peak == 3


def test_a_poison_message_is_dead_lettered_after_max_attempts_with_its_error_attributes(setup):
    workload_class = setup.make_class(max_delivery_attempts=5)
    message = "Corrupt input at byte 48213 in 'doc-7' (parser 3f9a2c1e)"
    probe = Probe(fail=lambda payload, context: ValueError(message))
    [message_id] = setup.publish(workload_class, [document(7)])
    with running(setup.worker(workload_class, probe)):
        [dead] = setup.dead_letters(workload_class, expect=1)
    assert [attempt for _, attempt in probe.calls] == [1, 2, 3, 4, 5]
    assert dead.attributes[ATTR_ERROR_TYPE] == "ValueError"
    assert dead.attributes[ATTR_ERROR_MESSAGE] == message
    assert dead.attributes[ATTR_ERROR_SIGNATURE] == error_signature("ValueError", message)
    assert dead.attributes[ATTR_ATTEMPTS] == "5"
    assert dead.attributes[ATTR_IDEMPOTENCY_KEY] == "acme:doc-7:1"  # the original attributes ride along
    assert dead.data == b'{"tenant_id": "acme", "document_id": "doc-7", "revision": 1}'
    outcomes = [(r.outcome, r.attempts) for r in setup.results(workload_class)]
    assert outcomes == [(WorkOutcome.FAILED, n) for n in range(1, 5)] + [(WorkOutcome.DEAD_LETTERED, 5)]
    assert {r.message_id for r in setup.results(workload_class)} == {message_id}
    assert setup.backlog(workload_class) == []  # acked: it does not come back


def test_a_permanent_error_is_dead_lettered_at_once(setup):
    workload_class = setup.make_class(max_delivery_attempts=5)
    probe = Probe(fail=lambda payload, context: PermanentError(f"Unsupported format {payload['document_id']!r}"))
    setup.publish(workload_class, [document(1)])
    with running(setup.worker(workload_class, probe)):
        [dead] = setup.dead_letters(workload_class, expect=1)
        time.sleep(0.3)  # a retry, if there were one, would be delivered at once (no backoff)
    assert probe.calls == [("acme:doc-1:1", 1)]
    assert dead.attributes[ATTR_ERROR_TYPE] == "PermanentError"
    assert dead.attributes[ATTR_ERROR_MESSAGE] == "Unsupported format 'doc-1'"
    assert dead.attributes[ATTR_ATTEMPTS] == "1"
    [row] = setup.results(workload_class)
    assert (row.outcome, row.error_type, row.error_signature) == (
        WorkOutcome.DEAD_LETTERED,
        "PermanentError",
        dead.attributes[ATTR_ERROR_SIGNATURE],
    )


def test_a_long_multibyte_error_text_reaches_the_dead_letter_cut_to_pubsubs_attribute_limit(setup):
    workload_class = setup.make_class(max_delivery_attempts=5)
    french = "Échec de la conversion : élément illisible. " * 40  # about 1,800 characters, more bytes
    probe = Probe(fail=lambda payload, context: PermanentError(french))
    setup.publish(workload_class, [document(1)])
    with running(setup.worker(workload_class, probe)):
        [dead] = setup.dead_letters(workload_class, expect=1)
    text = dead.attributes[ATTR_ERROR_MESSAGE]
    assert len(text.encode("utf-8")) <= 1024  # Pub/Sub refuses a longer attribute value
    assert text.endswith("…") and french.startswith(text[:-1])  # cut on a character, not a byte
    [row] = setup.results(workload_class)
    assert row.error_message == text


def test_duplicate_delivery_runs_the_handler_once(setup):
    workload_class = setup.make_class(max_concurrency=4)
    probe = Probe(seconds=0.2)
    # Two deliveries of one unit at once (a publisher retry), and a third after it completed.
    setup.publish(workload_class, [document(1), document(1)])
    with running(setup.worker(workload_class, probe)):
        wait_for(lambda: setup.results(workload_class), lambda rows: len(rows) == 2)
        setup.publish(workload_class, [document(1)])
        wait_for(lambda: setup.results(workload_class), lambda rows: len(rows) == 3)
    assert probe.calls == [("acme:doc-1:1", 1)]
    outcomes = sorted(r.outcome for r in setup.results(workload_class))
    assert outcomes == sorted([WorkOutcome.SUCCEEDED, WorkOutcome.SKIPPED_DUPLICATE, WorkOutcome.SKIPPED_DUPLICATE])
    assert setup.backlog(workload_class) == []


def test_an_invalid_payload_is_dead_lettered_without_running_the_handler(setup):
    workload_class = setup.make_class()
    probe = Probe()
    setup.publish(workload_class, [{"tenant_id": "acme", "document_id": "doc-1", "revision": 0}, b"\xff not json"])
    with running(setup.worker(workload_class, probe)):
        dead = setup.dead_letters(workload_class, expect=2)
    assert probe.calls == []
    errors = sorted((m.attributes[ATTR_ERROR_TYPE], m.attributes[ATTR_ERROR_MESSAGE][:40]) for m in dead)
    assert errors == [
        ("PayloadInvalid", "The message data is not JSON: 'utf-8' co"),
        ("PayloadInvalid", "The payload does not match the class sch"),
    ]
    assert all(m.attributes[ATTR_ATTEMPTS] == "1" for m in dead)


def test_a_success_records_its_result_and_reports_metrics_in_one_batch(setup):
    workload_class = setup.make_class()
    probe = Probe()
    setup.publish(workload_class, [document(n) for n in range(5)], ingested_at=minutes_ago(0.5))
    started = datetime.now(UTC)
    with running(setup.worker(workload_class, probe)):
        rows = wait_for(lambda: setup.results(workload_class), lambda rows: len(rows) == 5)
    for row in rows:
        assert row.outcome == WorkOutcome.SUCCEEDED and row.attempts == 1
        assert 30 <= row.latency_seconds < 30 + (datetime.now(UTC) - started).total_seconds() + 1
        assert (row.records, row.tokens) == (2, 300)
        assert row.cost_units == Decimal("0.152")  # 2 x 0.001 + 0.3 x 0.5
        assert row.worker_instance == "test-1"
    # The shutdown flush wrote one report for all five jobs, never one per job.
    target = metric_target(workload_class)
    window = dict(start=started - timedelta(minutes=2), end=datetime.now(UTC) + timedelta(minutes=1))
    metrics = setup.providers.metrics
    completed = metrics.series(MetricKind.COMPLETED, [target], **window).get(workload_class.slug, [])
    assert sum(p.value for p in completed) == 5
    records = metrics.series(MetricKind.RECORDS, [target], **window).get(workload_class.slug, [])
    assert sum(p.value for p in records) == 10
    if setup.name == "gcp":
        assert len(setup.fakes.monitoring.create_requests) == 1
    else:
        from workloads.providers.local.models import LocalWorkerReport

        assert LocalWorkerReport.objects.using(setup.alias).filter(slug=workload_class.slug).count() == 1


def test_a_transient_failure_is_retried_after_the_backoff(setup):
    workload_class = setup.make_class(min_backoff_seconds=1, max_backoff_seconds=2)
    failed_at: list[float] = []
    retried_at: list[float] = []

    def flaky(payload, context):
        if context.attempt == 1:
            failed_at.append(time.monotonic())
            raise TransientError("Backend unavailable (HTTP 503)")
        retried_at.append(time.monotonic())
        return None

    setup.publish(workload_class, [document(1)])
    with running(setup.worker(workload_class, flaky)):
        rows = wait_for(lambda: setup.results(workload_class), lambda rows: len(rows) == 2, timeout=30)
    assert [(r.outcome, r.attempts) for r in rows] == [(WorkOutcome.FAILED, 1), (WorkOutcome.SUCCEEDED, 2)]
    assert rows[0].error_type == "TransientError"
    # Not before the class's minimum backoff (Pub/Sub rounds a delayed nack up to whole seconds).
    assert retried_at[0] - failed_at[0] >= 0.9


def test_a_completion_event_goes_to_the_completion_topic(setup):
    slug = f"wk-done-{time.monotonic_ns() % 10**8}"
    completion_topic = f"projects/local-project/topics/{slug}-completed"
    workload_class = setup.make_class(slug=slug, completion_topic=completion_topic)
    spec = queue_spec(workload_class)
    listener = replace(
        spec,
        topic=completion_topic,
        subscription=f"projects/local-project/subscriptions/{slug}-completed-listener",
        dead_letter_topic=f"projects/local-project/topics/{slug}-completed-dl",
        dead_letter_subscription=f"projects/local-project/subscriptions/{slug}-completed-dl",
        completion_topic="",
    )
    setup.providers.queue.ensure_resources(listener)
    setup.publish(workload_class, [document(3)])
    with running(setup.worker(workload_class, Probe())):
        wait_for(lambda: setup.results(workload_class), lambda rows: len(rows) == 1)
    [event] = wait_for(lambda: setup.providers.queue.pull(listener, max_messages=5, timeout=1.0), timeout=10)
    import json

    body = json.loads(event.data)
    assert body["class"] == slug and body["idempotency_key"] == "acme:doc-3:1"
    assert body["outcome"] == "succeeded" and body["records"] == 2 and body["tokens"] == 300
    assert body["result"] == {"document_id": "doc-3"}
    assert event.attributes[ATTR_IDEMPOTENCY_KEY] == "acme:doc-3:1"


def test_a_replayed_message_is_timed_from_its_replay_not_its_first_ingestion(setup):
    """A dead letter replayed two days after it was ingested: its completion latency is the
    replay's, so the latency SLO does not absorb the dead-letter dwell."""
    import json

    from workloads.providers.base import ATTR_CLASS, ATTR_INGESTED_AT, ATTR_REPLAY_COUNT, OutboundMessage

    workload_class = setup.make_class()
    ingested = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    attributes = {ATTR_CLASS: workload_class.slug, ATTR_INGESTED_AT: ingested}
    replayed = OutboundMessage(
        json.dumps(document(1)).encode(),
        {**attributes, ATTR_IDEMPOTENCY_KEY: "acme:doc-1:1", ATTR_REPLAY_COUNT: "1"},
    )
    first_time = OutboundMessage(json.dumps(document(2)).encode(), {**attributes, ATTR_IDEMPOTENCY_KEY: "acme:doc-2:1"})
    setup.providers.queue.publish(queue_spec(workload_class), [replayed, first_time])
    with running(setup.worker(workload_class, Probe())):
        rows = wait_for(lambda: setup.results(workload_class), lambda rows: len(rows) == 2)
    latency = {row.idempotency_key: row.latency_seconds for row in rows}
    assert latency["acme:doc-1:1"] < 600  # from the replay's publish
    assert latency["acme:doc-2:1"] >= 2 * 86400  # a first delivery still counts from its ingestion
