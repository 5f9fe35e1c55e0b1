"""The dead-letter mirror: `dead_letters_sync` peeks each class's dead-letter subscription, upserts
the batch into `DeadLetter` rows in one transaction, and acks the batch there only after that
commit. A crash (or a failed write) before the ack leaves the messages in the subscription; the next
sync sees the same message ids and upserts nothing twice. A replayed message carries `cp-replay-of`
(the row's first dead-letter message id), so when it fails again its new dead-letter copy updates
that row (count, last seen, error) instead of making a new one. Replay and discard:
services/deadletters.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, DataError, transaction
from django.db.models import Q

from workloads.models import (
    DeadLetter,
    DeadLetterStatus,
    PayloadFormat,
    WorkloadClass,
)
from workloads.models.deadletters import PAYLOAD_LIMIT_BYTES
from workloads.providers import get_providers
from workloads.providers.base import (
    ATTR_ATTEMPTS,
    ATTR_ERROR_MESSAGE,
    ATTR_ERROR_SIGNATURE,
    ATTR_ERROR_TYPE,
    ATTR_IDEMPOTENCY_KEY,
    ATTR_REPLAY_COUNT,
    ATTR_REPLAY_OF,
    DEAD_LETTER_DELIVERY_COUNT,
    ProviderError,  # noqa: F401 (callers catch the replay's provider errors from here)
    ReceivedMessage,
)
from workloads.selectors.deadletters import REPLAYABLE_BY_DEFAULT, DeadLetterFilter  # noqa: F401 (the services take it)
from workloads.services.counters import counters_lock, dead_letters_counted
from workloads.services.deadletter_sync import classes_due, drain, record_checks

logger = logging.getLogger(__name__)

SYNC_BATCH = 100
SYNC_MAX_BATCHES = 20  # per class and tick: a huge backlog drains over several ticks
# Dead letters that Pub/Sub itself forwarded after max delivery attempts (the backstop for a
# worker that crashed) carry none of the worker kit's cp-error-* attributes.
BACKSTOP_ERROR_TYPE = "MaxDeliveryAttempts"
BACKSTOP_ERROR_MESSAGE = (
    "Delivered {attempts} times without being acknowledged; Pub/Sub moved it to the dead-letter topic "
    "(the worker crashed or timed out before it could record an error)."
)
# Never carried over to a replayed message: they describe the failure, not the work.
ERROR_ATTRIBUTES = frozenset({ATTR_ERROR_TYPE, ATTR_ERROR_MESSAGE, ATTR_ERROR_SIGNATURE, ATTR_ATTEMPTS})
DEAD_LETTER_ATTRIBUTE_PREFIX = "CloudPubSubDeadLetter"


def fallback_signature(error_type: str) -> str:
    """Signature of a dead letter that came without one (the Pub/Sub backstop): all such copies
    of a class group together."""
    return hashlib.sha256(f"{error_type}:".encode()).hexdigest()[:16]


def _int(value: Any) -> int:
    try:
        return max(0, int(str(value).strip()))
    except (TypeError, ValueError):
        return 0


# --- The mirror ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Payload:
    format: str
    payload: Any
    text: str
    size: int
    truncated: bool


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON that a database can store")


def _utf8(data: bytes, *, cut: bool) -> str | None:
    """Decode UTF-8; when the body was cut, up to 3 trailing bytes may be half a character."""
    for trim in range(4 if cut else 1):
        try:
            return data[: len(data) - trim].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


# jsonb refuses the NUL escape and unpaired surrogate escapes; JSON with any of them is kept as text.
_JSONB_UNSAFE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _stored_payload(data: bytes, *, binary: bool = False) -> _Payload:
    """How a message body is kept: JSON when it parses (and fits), else text, else base64
    (`binary` forces base64: the fallback when a database refused the other forms)."""
    data = bytes(data)
    size = len(data)
    truncated = size > PAYLOAD_LIMIT_BYTES
    kept = data[:PAYLOAD_LIMIT_BYTES]
    text = None if binary else _utf8(kept, cut=truncated)
    if text is None or "\x00" in text:
        # PostgreSQL text cannot hold NUL bytes; base64 keeps binary bodies byte for byte.
        return _Payload(PayloadFormat.BASE64, None, base64.b64encode(kept).decode(), size, truncated)
    if not truncated and not _JSONB_UNSAFE.search(text):
        try:
            return _Payload(PayloadFormat.JSON, json.loads(text, parse_constant=_reject_constant), "", size, False)
        except ValueError:
            pass
    return _Payload(PayloadFormat.TEXT, None, text, size, truncated)


def _text(value: str) -> str:
    # Pub/Sub strings may hold NUL characters; PostgreSQL text and jsonb cannot.
    return value.replace("\x00", "\ufffd")


def _mirror_fields(message: ReceivedMessage) -> dict:
    attributes = {_text(name): _text(value) for name, value in message.attributes.items()}
    error_type = attributes.get(ATTR_ERROR_TYPE, "").strip()
    attempts = _int(attributes.get(ATTR_ATTEMPTS)) or _int(attributes.get(DEAD_LETTER_DELIVERY_COUNT))
    if error_type:
        error_message = attributes.get(ATTR_ERROR_MESSAGE, "")
    else:
        error_type = BACKSTOP_ERROR_TYPE
        error_message = BACKSTOP_ERROR_MESSAGE.format(attempts=attempts or "several")
    signature = attributes.get(ATTR_ERROR_SIGNATURE, "").strip()[:64] or fallback_signature(error_type)
    return {
        "attributes": attributes,
        "ordering_key": _text(message.ordering_key)[:1024],
        "idempotency_key": attributes.get(ATTR_IDEMPOTENCY_KEY, "")[:255],
        "delivery_attempts": attempts,
        "error_type": error_type[:200],
        "error_message": error_message,
        "error_signature": signature,
        "replay_count": _int(attributes.get(ATTR_REPLAY_COUNT)),
    }


def _mirror_batch(
    workload_class: WorkloadClass, messages: list[ReceivedMessage], *, now: datetime, binary: bool = False
) -> int:
    """Upsert one peeked batch in one transaction; returns how many rows were created or updated."""
    unique: dict[str, ReceivedMessage] = {}
    for message in messages:
        unique.setdefault(message.message_id, message)
    ids = list(unique)
    refs = {m.attributes.get(ATTR_REPLAY_OF, "") for m in unique.values()} - {""}
    changed = 0
    with transaction.atomic():
        # Serializes the class's mirror batches, so a copy two syncs both leased is counted once.
        counters_lock([workload_class.pk])
        rows = list(
            DeadLetter.objects.select_for_update()
            .filter(workload_class=workload_class)
            .filter(Q(message_id__in=[*ids, *refs]) | Q(last_message_id__in=ids))
        )
        by_first_id = {row.message_id: row for row in rows}
        mirrored = {row.message_id for row in rows} | {row.last_message_id for row in rows}
        creates = []
        for message_id, message in unique.items():
            if message_id in mirrored:
                continue  # mirrored before, but its ack was lost: nothing new to record
            fields = _mirror_fields(message)
            seen = message.publish_time or now
            row = by_first_id.get(message.attributes.get(ATTR_REPLAY_OF, ""))
            if row is not None:
                # A replay of this row failed again: same row, one more time in the queue.
                for name, value in fields.items():
                    setattr(row, name, value)
                row.replay_count = max(row.replay_count, fields["replay_count"])
                row.last_message_id = message_id
                row.last_seen = max(row.last_seen, seen)
                row.dead_letter_count += 1
                row.mirrored_at = now
                if row.status != DeadLetterStatus.DISCARDED:
                    row.status = DeadLetterStatus.NEW
                row.save()
            else:
                payload = _stored_payload(message.data, binary=binary)
                creates.append(
                    DeadLetter(
                        workload_class=workload_class,
                        message_id=message_id,
                        last_message_id=message_id,
                        payload_format=payload.format,
                        payload=payload.payload,
                        payload_text=payload.text,
                        payload_size=payload.size,
                        payload_truncated=payload.truncated,
                        first_seen=seen,
                        last_seen=seen,
                        mirrored_at=now,
                        **fields,
                    )
                )
            mirrored.add(message_id)
            changed += 1
        # ignore_conflicts: a concurrent sync that leased the same copy after a lease expiry
        # already wrote it.
        DeadLetter.objects.bulk_create(creates, ignore_conflicts=True)
        dead_letters_counted(workload_class_id=workload_class.pk, count=changed)
    return changed


def dead_letters_sync(
    *,
    now: datetime,
    workload_classes: list[WorkloadClass] | None = None,
    batch_size: int = SYNC_BATCH,
    max_batches: int = SYNC_MAX_BATCHES,
) -> dict[str, int]:
    """Beat tick: mirror every class's dead letters, then ack them. Call outside a transaction
    (the ack must follow the commit). Subscriptions are read several at once and one the last sync
    found empty is skipped for a while (services/deadletter_sync.py). Returns {slug: messages
    mirrored} for every class; a class whose queue cannot be read (resources not ensured yet,
    permission denied) is logged and skipped."""
    classes = workload_classes if workload_classes is not None else list(WorkloadClass.objects.order_by("slug"))
    due = classes_due(classes, now=now)

    def mirror(workload_class: WorkloadClass, messages: list[ReceivedMessage]) -> None:
        try:
            _mirror_batch(workload_class, messages, now=now)
        except DataError:
            # A body the database refused in a form we did not foresee: keep it as base64 rather
            # than let one message stop the class's mirror for good.
            logger.warning("dead-letter sync of %s: storing a batch's payloads as base64", workload_class.slug)
            _mirror_batch(workload_class, messages, now=now, binary=True)

    counts, empty = drain(
        get_providers().queue,
        due,
        mirror=mirror,
        batch_size=batch_size,
        max_batches=max_batches,
        concurrency=settings.DEAD_LETTER_SYNC_CONCURRENCY,
    )
    try:
        record_checks(empty, now=now)
    except DatabaseError:
        logger.exception("dead-letter sync: could not record which subscriptions were empty")
    return {wc.slug: counts.get(wc.slug, 0) for wc in classes}
