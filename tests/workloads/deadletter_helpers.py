"""Shared set-up for the dead-letter tests: classes with queues, dead letters made the two ways
they arrive (the worker kit's copy with cp-error-* attributes, and Pub/Sub's backstop after max
delivery attempts), and a look at what is waiting on a class's subscription."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from itertools import count

from django.utils import timezone

from tests.factories import WorkloadClassFactory
from tests.queue_sentinel import before_a_sentinel
from workloads.models import DeadLetter, DeadLetterStatus, WorkloadClass
from workloads.providers.base import (
    ATTR_ATTEMPTS,
    ATTR_CLASS,
    ATTR_ERROR_MESSAGE,
    ATTR_ERROR_SIGNATURE,
    ATTR_ERROR_TYPE,
    ATTR_IDEMPOTENCY_KEY,
    OutboundMessage,
    Queue,
    ReceivedMessage,
)
from workloads.providers.specs import queue_spec

_ids = count(1)


def make_class(queue: Queue, slug: str | None = None, **fields) -> WorkloadClass:
    """A class with no retry backoff (nacked messages come back at once) and its queue resources."""
    fields.setdefault("min_backoff_seconds", 0)
    fields.setdefault("max_backoff_seconds", 0)
    workload_class = WorkloadClassFactory(**({"slug": slug} if slug else {}), **fields)
    queue.ensure_resources(queue_spec(workload_class))
    return workload_class


def event(n: int, **extra) -> dict:
    return {"tenant_id": "acme", "document_id": f"doc-{n}", "revision": 1, **extra}


def work_attributes(workload_class: WorkloadClass, payload: dict) -> dict[str, str]:
    key = f"{payload['tenant_id']}:{payload['document_id']}:{payload['revision']}"
    return {ATTR_CLASS: workload_class.slug, ATTR_IDEMPOTENCY_KEY: key, "cp-trace-id": "trace-1"}


def kit_dead_letter(
    queue: Queue,
    workload_class: WorkloadClass,
    payload,
    *,
    error_type: str = "Unavailable",
    message: str = "backend unavailable",
    signature: str = "sig-unavailable",
    attempts: int = 3,
    extra: dict | None = None,
    data: bytes | None = None,
) -> str:
    """What the worker kit publishes to the dead-letter topic when it gives up on a message."""
    spec = queue_spec(workload_class)
    attributes = {
        **(work_attributes(workload_class, payload) if isinstance(payload, dict) else {}),
        ATTR_ERROR_TYPE: error_type,
        ATTR_ERROR_MESSAGE: message,
        ATTR_ERROR_SIGNATURE: signature,
        ATTR_ATTEMPTS: str(attempts),
        **(extra or {}),
    }
    body = data if data is not None else json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    [message_id] = queue.publish(spec, [OutboundMessage(body, attributes)], topic=spec.dead_letter_topic)
    return message_id


def exhaust(queue: Queue, workload_class: WorkloadClass, *, messages: int = 1) -> None:
    """Nack everything on the class subscription until the queue dead-letters it (Pub/Sub's backstop)."""
    spec = queue_spec(workload_class)
    for _ in range(spec.max_delivery_attempts + 1):
        received = queue.pull(spec, max_messages=messages, timeout=2.0)
        if received:
            queue.nack(spec, [m.ack_id for m in received])


def waiting(queue: Queue, workload_class: WorkloadClass, *, at_most: int = 500, timeout: float = 0.5):
    """Everything waiting on the class subscription, acked so a second look does not see it again."""
    spec = queue_spec(workload_class)
    found: list[ReceivedMessage] = []
    while True:
        received = queue.pull(spec, max_messages=at_most, timeout=timeout)
        if not received:
            return found
        queue.ack(spec, [m.ack_id for m in received])
        found += received


def drain(queue: Queue, workload_class: WorkloadClass, *, at_least: int, timeout: float = 20.0):
    """Everything published to the class's topic so far, acked, once `at_least` messages came:
    "and nothing more" is proved by a sentinel published behind them (tests/queue_sentinel.py),
    not by waiting a timeout out. Call it after the publishes under test have returned."""
    found = before_a_sentinel(queue, queue_spec(workload_class), ack=True, timeout=timeout)
    deadline = time.monotonic() + timeout
    while len(found) < at_least:  # only if the emulator ever delivered one behind the sentinel
        assert time.monotonic() < deadline, f"{len(found)} of {at_least} messages"
        found += waiting(queue, workload_class, timeout=2.0)
    return found


def dead_letter_row(workload_class: WorkloadClass, *, seen: datetime | None = None, **fields) -> DeadLetter:
    """A mirror row written directly (for selection, triage and API tests)."""
    n = next(_ids)
    seen = seen or timezone.now() - timedelta(minutes=1)
    payload = fields.pop("payload", event(n))
    values = {
        "message_id": f"m-{n}",
        "last_message_id": f"m-{n}",
        "payload": payload,
        "payload_size": len(json.dumps(payload)),
        "attributes": work_attributes(workload_class, payload) if isinstance(payload, dict) else {},
        "idempotency_key": f"acme:doc-{n}:1",
        "error_type": "Unavailable",
        "error_message": "backend unavailable",
        "error_signature": "sig-unavailable",
        "delivery_attempts": 5,
        "first_seen": seen,
        "last_seen": seen,
        "mirrored_at": seen,
        "status": DeadLetterStatus.NEW,
    }
    values.update(fields)
    return DeadLetter.objects.create(workload_class=workload_class, **values)
