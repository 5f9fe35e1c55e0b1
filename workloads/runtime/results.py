"""The result writer: records how each delivery was settled, and makes completion idempotent.

A unit whose idempotency key already completed within the class's dedup TTL is not run again
(`already_completed`). A success is recorded in one transaction with the decision to ack: the
`succeeded` row goes in under a unique constraint (one live success per key), so two deliveries
of one key racing to completion record one success and one `skipped_duplicate`; the row is
committed before the message is acked, so a crash in between redelivers a message the next
attempt skips. The completion event is published inside that transaction: with the local
provider it commits with the row (exactly once); with Pub/Sub a failed publish rolls the row back
and the unit is retried, and a crash after the publish but before the commit publishes it again,
so completion events are at-least-once and carry the idempotency key for consumers to dedupe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from workloads.models import WorkOutcome, WorkResult
from workloads.providers.base import ATTR_CLASS, ATTR_IDEMPOTENCY_KEY, ATTR_TRACE_ID, OutboundMessage, Queue, QueueSpec

COMPLETION_SUMMARY_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Settled:
    """One delivery's outcome, as the worker decided it."""

    outcome: WorkOutcome
    message_id: str
    idempotency_key: str
    attempts: int
    latency_seconds: float | None = None
    records: int = 0
    tokens: int = 0
    cost_units: Decimal = Decimal(0)
    error_type: str = ""
    error_message: str = ""
    error_signature: str = ""
    trace_id: str = ""


class ResultWriter:
    def __init__(
        self,
        *,
        workload_class_id: int,
        spec: QueueSpec,
        queue: Queue,
        dedup_ttl_seconds: int,
        instance_id: str = "",
        using: str = "default",
        now: Callable[[], datetime] = timezone.now,
    ):
        self.workload_class_id = workload_class_id
        self.spec = spec
        self.queue = queue
        self.ttl = timedelta(seconds=dedup_ttl_seconds)
        self.instance_id = instance_id
        self.using = using
        self._now = now

    def already_completed(self, key: str) -> bool:
        return (
            WorkResult.objects.using(self.using)
            .filter(
                workload_class_id=self.workload_class_id,
                idempotency_key=key,
                outcome=WorkOutcome.SUCCEEDED,
                superseded=False,
                completed_at__gt=self._now() - self.ttl,
            )
            .exists()
        )

    def record_success(self, settled: Settled, *, summary: dict | None = None) -> bool:
        """Record a success and publish its completion event; False when another delivery of the
        key completed first (then a `skipped_duplicate` row is recorded and nothing is published)."""
        now = self._now()
        with transaction.atomic(using=self.using):
            # A success older than the TTL no longer deduplicates: the key may complete anew.
            WorkResult.objects.using(self.using).filter(
                workload_class_id=self.workload_class_id,
                idempotency_key=settled.idempotency_key,
                outcome=WorkOutcome.SUCCEEDED,
                superseded=False,
                completed_at__lte=now - self.ttl,
            ).update(superseded=True)
            try:
                with transaction.atomic(using=self.using):
                    self._insert(settled, now)
            except IntegrityError:
                self._insert(_as_duplicate(settled), now)
                return False
            if self.spec.completion_topic:
                event = self._completion_event(settled, summary)
                self.queue.publish(self.spec, [event], topic=self.spec.completion_topic)
        return True

    def record(self, settled: Settled) -> None:
        """Record a delivery that did not complete the unit (failed, timed out, dead-lettered) or
        that was skipped as a duplicate."""
        if settled.outcome == WorkOutcome.SUCCEEDED:
            raise ValueError("record successes with record_success")
        with transaction.atomic(using=self.using):
            self._insert(settled, self._now())

    def _insert(self, settled: Settled, now: datetime) -> WorkResult:
        return WorkResult.objects.using(self.using).create(
            workload_class_id=self.workload_class_id,
            idempotency_key=settled.idempotency_key,
            message_id=settled.message_id,
            outcome=settled.outcome,
            attempts=settled.attempts,
            latency_seconds=settled.latency_seconds,
            records=settled.records,
            tokens=settled.tokens,
            cost_units=settled.cost_units,
            error_type=settled.error_type[:200],
            error_message=settled.error_message[:1000],
            error_signature=settled.error_signature,
            worker_instance=self.instance_id[:200],
            completed_at=now,
        )

    def _completion_event(self, settled: Settled, summary: dict | None) -> OutboundMessage:
        body = {
            "class": self.spec.slug,
            "idempotency_key": settled.idempotency_key,
            "message_id": settled.message_id,
            "outcome": settled.outcome.value,
            "attempts": settled.attempts,
            "latency_seconds": settled.latency_seconds,
            "records": settled.records,
            "tokens": settled.tokens,
            "cost_units": str(settled.cost_units),
            "result": summary,
        }
        data = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
        if len(data) > COMPLETION_SUMMARY_MAX_BYTES:
            body["result"] = {"truncated": True}
            data = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
        attributes = {ATTR_CLASS: self.spec.slug, ATTR_IDEMPOTENCY_KEY: settled.idempotency_key}
        if settled.trace_id:
            attributes[ATTR_TRACE_ID] = settled.trace_id
        return OutboundMessage(data=data, attributes=attributes)


def _as_duplicate(settled: Settled) -> Settled:
    return replace(settled, outcome=WorkOutcome.SKIPPED_DUPLICATE)
