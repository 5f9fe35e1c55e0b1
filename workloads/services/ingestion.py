"""Ingestion: validate and normalize events, deduplicate by idempotency key, publish.

Deduplication follows Stripe and the IETF idempotency-key draft: within the class's dedup TTL the
same key with the same payload fingerprint returns the original receipt, and the same key with a
different payload is a conflict. It holds under concurrency because the key is claimed by an
INSERT on a unique constraint. With the local provider the publish is part of the claim's
transaction, so nothing is ever half-written (on PostgreSQL the keys' records, the messages and
their deliveries are even one statement: `LocalQueue.publish_guarded`), and a concurrent request
with the same key waits on that row and then reads the winner's receipt.

With Pub/Sub the publish is a network call and no transaction spans it: the claims commit, the
publish waits at most INGESTION_PUBLISH_TIMEOUT_SECONDS, then the receipts are written; a failed
or timed-out publish gives its keys back and the request answers 503 with Retry-After, so the
client's retry is accepted once. A concurrent request with the same key waits for the receipt
(within the same deadline). A publish given up on that still lands later, or a crash between
publish and receipt, leaves a message whose key is not recorded, which the worker kit's
completed-key check then skips (at-least-once delivery, effectively-once processing).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q

from workloads.domain.payloads import CheckedEvent, FieldError, canonical_json, normalize_and_validate
from workloads.fastsql import insert_rows, set_field_by_pk
from workloads.models import IdempotencyRecord, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.base import (
    ATTR_CLASS,
    ATTR_IDEMPOTENCY_KEY,
    ATTR_INGESTED_AT,
    ATTR_SCHEMA_VERSION,
    ATTR_TRACE_ID,
    GuardRows,
    OutboundMessage,
    ProviderError,
    Queue,
)
from workloads.providers.celery import celery_send
from workloads.providers.limits import MAX_MESSAGE_BYTES, MAX_ORDERING_KEY_BYTES, utf8_len
from workloads.providers.specs import queue_spec
from workloads.runtimes import Runtime, routes_to_target
from workloads.validation import render_key_template

MAX_BATCH_EVENTS = 1000
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_KEY_LENGTH = 255
ATTRIBUTES_ALLOWANCE_BYTES = 512  # attribute names, ingest time, trace id, schema version
# A claim still without a receipt this long after its publish deadline was left by a request that
# died between claim and publish: its key is free again.
ABANDONED_CLAIM_MARGIN = 30
RECEIPT_POLL_SECONDS = 0.05

logger = logging.getLogger(__name__)


class Status:
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    CONFLICT = "conflict"


@dataclass
class EventResult:
    index: int
    status: str
    idempotency_key: str = ""
    message_id: str = ""
    ordering_key: str = ""
    errors: list[FieldError] = field(default_factory=list)

    def as_dict(self) -> dict:
        body = {"index": self.index, "status": self.status}
        if self.status == Status.REJECTED:
            body["errors"] = [error.as_dict() for error in self.errors]
            if self.idempotency_key:
                body["idempotency_key"] = self.idempotency_key
            return body
        body.update(
            idempotency_key=self.idempotency_key,
            duplicate=self.status == Status.DUPLICATE,
        )
        if self.status == Status.CONFLICT:
            body["detail"] = (
                f"The idempotency key {self.idempotency_key!r} was already used with a different payload "
                "within the class's dedup TTL."
            )
        else:
            body["message_id"] = self.message_id
            if self.ordering_key:
                body["ordering_key"] = self.ordering_key
        return body


@dataclass
class _Candidate:
    index: int
    payload: dict
    key: str
    ordering_key: str
    fingerprint: str
    data: bytes  # the message data: the canonical JSON, encoded once for the fingerprint and the publish


def _candidate(index: int, checked: CheckedEvent, workload_class: WorkloadClass, header_key: str | None):
    payload = checked.payload
    key = (
        header_key if header_key is not None else render_key_template(workload_class.idempotency_key_template, payload)
    )
    ordering_key = (
        render_key_template(workload_class.ordering_key_template, payload)
        if workload_class.ordering_key_template
        else ""
    )
    if not key or len(key) > MAX_KEY_LENGTH:
        error = FieldError(
            "idempotency_key", f"The idempotency key must be 1 to {MAX_KEY_LENGTH} characters.", "maxLength"
        )
        return EventResult(index, Status.REJECTED, idempotency_key=key[:MAX_KEY_LENGTH], errors=[error])
    if "\x00" in key or "\x00" in ordering_key:
        # Keys are stored as text and sent as attributes: neither PostgreSQL nor Pub/Sub takes NUL.
        field = "idempotency_key" if "\x00" in key else "ordering_key"
        error = FieldError(field, f"The {field.replace('_', ' ')} must not contain NUL characters.", "pattern")
        return EventResult(index, Status.REJECTED, errors=[error])
    if utf8_len(ordering_key) > MAX_ORDERING_KEY_BYTES:
        # Cutting it would merge distinct keys (and their order): refuse, naming Pub/Sub's limit.
        error = FieldError(
            "ordering_key",
            f"The ordering key rendered from the class's template is {utf8_len(ordering_key)} bytes of UTF-8, "
            f"over Pub/Sub's limit of {MAX_ORDERING_KEY_BYTES} bytes.",
            "maxLength",
        )
        return EventResult(index, Status.REJECTED, idempotency_key=key, errors=[error])
    data = canonical_json(payload).encode()
    # Our attributes: the key, the slug and a few short fixed ones (names, time, trace, version).
    size = len(data) + utf8_len(key) + utf8_len(workload_class.slug) + ATTRIBUTES_ALLOWANCE_BYTES
    if size > MAX_MESSAGE_BYTES:
        error = FieldError(
            "",
            f"The event is {len(data)} bytes as JSON; with its attributes that is over Pub/Sub's limit of "
            f"{MAX_MESSAGE_BYTES} bytes per message.",
            "maxLength",
        )
        return EventResult(index, Status.REJECTED, idempotency_key=key, errors=[error])
    return _Candidate(index, payload, key, ordering_key, hashlib.sha256(data).hexdigest(), data)


def events_ingest(
    *,
    workload_class: WorkloadClass,
    events: list,
    idempotency_key: str | None = None,
    trace_id: str = "",
    now: datetime,
) -> list[EventResult]:
    """Ingest events for one class; returns one result per event, in order."""
    results: dict[int, EventResult] = {}
    candidates: list[_Candidate] = []
    for index, event in enumerate(events):
        checked = normalize_and_validate(event, workload_class.payload_schema)
        if not checked.ok:
            results[index] = EventResult(index, Status.REJECTED, errors=list(checked.errors))
            continue
        made = _candidate(index, checked, workload_class, idempotency_key)
        if isinstance(made, EventResult):
            results[index] = made
        else:
            candidates.append(made)

    # Two events of one batch with the same key: the first one speaks for both.
    first_by_key: dict[str, _Candidate] = {}
    unique: list[_Candidate] = []
    repeats: list[_Candidate] = []
    for candidate in candidates:
        if candidate.key in first_by_key:
            repeats.append(candidate)
        else:
            first_by_key[candidate.key] = candidate
            unique.append(candidate)

    if unique:
        trace_id = trace_id or uuid.uuid4().hex
        for destination, group in _routed(workload_class, unique):
            results.update(
                _claim_and_publish(workload_class, group, destination=destination, trace_id=trace_id, now=now)
            )
    for repeat in repeats:
        first = results[first_by_key[repeat.key].index]
        same = repeat.fingerprint == first_by_key[repeat.key].fingerprint and first.status != Status.CONFLICT
        results[repeat.index] = _seen_before(
            repeat.index, repeat.key, same=same, message_id=first.message_id, ordering_key=first.ordering_key
        )
    return [results[index] for index in range(len(events))]


def _routed(workload_class: WorkloadClass, candidates: list[_Candidate]) -> list[tuple[WorkloadClass, list]]:
    """The migration switch: a plan's share of the keys (by a stable hash) goes to its target
    class, the rest to this class's own runtime. Keys are claimed under this class either way, so
    an event is deduplicated across both sides and never sent to both."""
    if not (workload_class.route_percent and workload_class.route_to_id):
        return [(workload_class, candidates)]
    moved = [c for c in candidates if routes_to_target(c.key, workload_class.route_percent)]
    kept = [c for c in candidates if not routes_to_target(c.key, workload_class.route_percent)]
    return [(side, group) for side, group in ((workload_class, kept), (workload_class.route_to, moved)) if group]


def _seen_before(index: int, key: str, *, same: bool, message_id: str, ordering_key: str) -> EventResult:
    """A key already taken: the original receipt when the payload is the same, else a conflict."""
    if not same:
        return EventResult(index, Status.CONFLICT, idempotency_key=key)
    return EventResult(index, Status.DUPLICATE, idempotency_key=key, message_id=message_id, ordering_key=ordering_key)


def _claim_and_publish(
    workload_class: WorkloadClass,
    candidates: list[_Candidate],
    *,
    destination: WorkloadClass,
    trace_id: str,
    now: datetime,
) -> dict[int, EventResult]:
    """Claim the keys under `workload_class` and publish to `destination` (the class itself, or a
    migration plan's target): its topic, or its Celery task when it runs on Celery."""
    results: dict[int, EventResult] = {}
    queue = get_providers().queue
    # A Celery broker is a network call outside our database, like Pub/Sub: the general path.
    local_topic = destination.runtime != Runtime.CELERY
    if queue.supports_guarded_publish and local_topic:
        results = _claim_and_publish_guarded(
            queue, workload_class, candidates, destination=destination, trace_id=trace_id, now=now
        )
        candidates = [c for c in candidates if c.index not in results]  # their keys were taken
        if not candidates:
            return results
    if queue.publish_joins_transaction and local_topic:
        # The local queue: claims, messages and receipts commit together or not at all.
        with transaction.atomic():
            mine, claimed = _claim(workload_class, candidates, results, trace_id=trace_id, now=now)
            if mine:
                message_ids = _publish(destination, mine, trace_id=trace_id, now=now)
                _store_message_ids([claimed[c.key] for c in mine], message_ids)
                results.update(_accepted(mine, message_ids))
        return results
    # A publish over the network (Pub/Sub) never runs inside a transaction: the claims commit
    # first, the publish waits at most INGESTION_PUBLISH_TIMEOUT_SECONDS, and a failed publish
    # gives its keys back (the compensation), so the client's retry is accepted, once.
    with transaction.atomic():
        mine, claimed = _claim(workload_class, candidates, results, trace_id=trace_id, now=now)
    if mine:
        record_ids = [claimed[c.key] for c in mine]
        try:
            message_ids = _publish(
                destination, mine, trace_id=trace_id, now=now, deadline=settings.INGESTION_PUBLISH_TIMEOUT_SECONDS
            )
        except BaseException:
            _release_claims(record_ids)
            raise
        _store_message_ids(record_ids, message_ids)
        results.update(_accepted(mine, message_ids))
    _await_receipts(workload_class, candidates, results)
    return results


def _claim(
    workload_class: WorkloadClass,
    candidates: list[_Candidate],
    results: dict[int, EventResult],
    *,
    trace_id: str,
    now: datetime,
) -> tuple[list[_Candidate], dict[str, int]]:
    """Claim the candidates' keys (inside the caller's transaction); the events whose keys were
    taken get their result in `results`. Returns the candidates this request claimed and
    {key: record id}."""
    claimed = _claim_keys(workload_class, candidates, trace_id=trace_id, now=now)
    taken = [c for c in candidates if c.key not in claimed]
    if taken:
        stored = _stored_records(workload_class, taken)
        # Expired keys are free again (the prune task may lag): take them over. A key whose row
        # vanished since the INSERT (pruned or given back meanwhile) is free too, and so is one a
        # crashed request claimed and never published (no receipt long after its publish deadline).
        abandoned_before = now - timedelta(seconds=settings.INGESTION_PUBLISH_TIMEOUT_SECONDS + ABANDONED_CLAIM_MARGIN)
        free = (
            Q(expires_at__lte=now)  # expired
            | Q(message_id="", created_at__lte=abandoned_before)  # abandoned
        )

        def is_free(record: IdempotencyRecord | None) -> bool:
            return (
                record is None
                or record.expires_at <= now
                or (not record.message_id and record.created_at <= abandoned_before)
            )

        expired = [c for c in taken if is_free(stored.get(c.key))]
        if expired:
            IdempotencyRecord.objects.filter(
                free, workload_class=workload_class, key__in=[c.key for c in expired]
            ).delete()
            claimed.update(_claim_keys(workload_class, expired, trace_id=trace_id, now=now))
            lost = [c for c in expired if c.key not in claimed]
            stored.update(_stored_records(workload_class, lost))  # a concurrent request was first
        for candidate in taken:
            if candidate.key in claimed:
                continue
            record = stored[candidate.key]
            results[candidate.index] = _seen_before(
                candidate.index,
                candidate.key,
                same=record.payload_fingerprint == candidate.fingerprint,
                message_id=record.message_id,
                ordering_key=record.ordering_key,
            )
    return [c for c in candidates if c.key in claimed], claimed


def _accepted(candidates: list[_Candidate], message_ids: list[str]) -> dict[int, EventResult]:
    return {
        c.index: EventResult(
            c.index, Status.ACCEPTED, idempotency_key=c.key, message_id=message_id, ordering_key=c.ordering_key
        )
        for c, message_id in zip(candidates, message_ids, strict=True)
    }


def _release_claims(record_ids: list[int]) -> None:
    """Give back the keys of a publish that failed (only rows still without a receipt)."""
    try:
        IdempotencyRecord.objects.filter(pk__in=record_ids, message_id="").delete()
    except DatabaseError:
        # The claims stay; once past the publish deadline they count as abandoned and are taken over.
        logger.exception("Could not give back %d idempotency keys after a failed publish", len(record_ids))


def _await_receipts(
    workload_class: WorkloadClass, candidates: list[_Candidate], results: dict[int, EventResult]
) -> None:
    """A duplicate of a key whose first request is still publishing (its claim is committed, its
    receipt not yet) waits for that receipt, within the publish deadline. If the first request
    gave its key back, or is still not done, this one answers 503 (the client retries)."""
    waiting = {
        c.key: c.index
        for c in candidates
        if results[c.index].status == Status.DUPLICATE and not results[c.index].message_id
    }
    give_up_at = time.monotonic() + settings.INGESTION_PUBLISH_TIMEOUT_SECONDS
    while waiting:
        stored = IdempotencyRecord.objects.filter(workload_class=workload_class, key__in=list(waiting))
        receipts = dict(stored.values_list("key", "message_id"))
        for key, message_id in receipts.items():
            if message_id:
                results[waiting.pop(key)].message_id = message_id
        if not waiting:
            return
        if set(waiting) - set(receipts) or time.monotonic() >= give_up_at:
            raise ProviderError(
                "An earlier request with the same idempotency key did not finish publishing; retry shortly.",
                permanent=False,
                code="UNAVAILABLE",
                resource=queue_spec(workload_class).topic,
            )
        time.sleep(RECEIPT_POLL_SECONDS)


def _claim_and_publish_guarded(
    queue: Queue,
    workload_class: WorkloadClass,
    candidates: list[_Candidate],
    *,
    destination: WorkloadClass,
    trace_id: str,
    now: datetime,
) -> dict[int, EventResult]:
    """On a queue that can publish guarded by rows (the local queue on PostgreSQL) the keys'
    records are the guards: the claims and the publish are one statement, where the transaction
    below takes seven round trips (BEGIN, the claims, the topic, the messages, their deliveries,
    the receipts, COMMIT). Returns the accepted events; the others' keys were taken, and the
    general path below tells duplicates, conflicts and expired keys apart."""
    message_ids = queue.publish_guarded(
        queue_spec(destination),
        [_outbound(destination, c, trace_id=trace_id, now=now) for c in candidates],
        _key_record_guards(workload_class, candidates, trace_id=trace_id, now=now),
    )
    return {
        c.index: EventResult(
            c.index, Status.ACCEPTED, idempotency_key=c.key, message_id=message_id, ordering_key=c.ordering_key
        )
        for c, message_id in zip(candidates, message_ids, strict=True)
        if message_id is not None
    }


# What a claim writes of an IdempotencyRecord (the message id comes with the publish). The class
# and the key, its unique columns, come first: guard rows are inserted in the order of their values.
_KEY_RECORD_FIELDS = (
    "workload_class",
    "key",
    "payload_fingerprint",
    "ordering_key",
    "trace_id",
    "created_at",
    "expires_at",
)


def _key_record_values(workload_class: WorkloadClass, candidate: _Candidate, *, trace_id: str, now: datetime) -> tuple:
    """The values of `_KEY_RECORD_FIELDS` for one event."""
    expires_at = now + timedelta(seconds=workload_class.dedup_ttl_seconds)
    return (workload_class.pk, candidate.key, candidate.fingerprint, candidate.ordering_key, trace_id, now, expires_at)


def _key_record_guards(
    workload_class: WorkloadClass, candidates: list[_Candidate], *, trace_id: str, now: datetime
) -> GuardRows:
    fields = _key_record_fields(connection.vendor)

    def row(candidate: _Candidate) -> tuple:
        values = _key_record_values(workload_class, candidate, trace_id=trace_id, now=now)
        pairs = zip(fields, values, strict=True)
        return tuple(field.get_db_prep_save(value, connection) for (field, _type), value in pairs)

    return GuardRows(
        table=IdempotencyRecord._meta.db_table,
        columns=tuple((field.column, sql_type) for field, sql_type in fields),
        rows=tuple(row(c) for c in candidates),
        message_id_column=IdempotencyRecord._meta.get_field("message_id").column,
    )


@cache
def _key_record_fields(vendor: str) -> tuple:
    """(field, SQL type) of each guard column, worked out once (0.1 ms per event otherwise)."""
    fields = map(IdempotencyRecord._meta.get_field, _KEY_RECORD_FIELDS)
    return tuple((field, field.cast_db_type(connection)) for field in fields)


def _claim_keys(
    workload_class: WorkloadClass, candidates: list[_Candidate], *, trace_id: str, now: datetime
) -> dict[str, int]:
    """Insert the keys that are free; returns {key: record id} for the ones this request inserted.

    One `INSERT ... ON CONFLICT DO NOTHING RETURNING` instead of an insert and a read-back (single
    events are the hot path). A key another transaction holds uncommitted waits for it here, then
    counts as taken (or free, if that transaction rolled back). Sorted, so two batches sharing
    keys lock them in the same order (no deadlock).
    """
    inserted = insert_rows(
        IdempotencyRecord,
        (*_KEY_RECORD_FIELDS, "message_id"),
        [
            (*_key_record_values(workload_class, c, trace_id=trace_id, now=now), "")
            for c in sorted(candidates, key=lambda c: c.key)
        ],
        ignore_conflicts=True,
        returning=("id", "key"),
    )
    return {key: record_id for record_id, key in inserted}


def _stored_records(workload_class: WorkloadClass, candidates: list[_Candidate]) -> dict[str, IdempotencyRecord]:
    keys = [c.key for c in candidates]
    return {r.key: r for r in IdempotencyRecord.objects.filter(workload_class=workload_class, key__in=keys)}


def _store_message_ids(record_ids: list[int], message_ids: list[str]) -> None:
    """The receipt a duplicate gets back: a plain UPDATE per record, sent together, instead of
    the ORM's CASE WHEN `bulk_update` that cost more to build than to run."""
    set_field_by_pk(IdempotencyRecord, "message_id", zip(message_ids, record_ids, strict=True))


def _publish(
    workload_class: WorkloadClass,
    candidates: list[_Candidate],
    *,
    trace_id: str,
    now: datetime,
    deadline: float | None = None,
) -> list[str]:
    messages = [_outbound(workload_class, c, trace_id=trace_id, now=now) for c in candidates]
    if workload_class.runtime == Runtime.CELERY:
        return celery_send(workload_class.runtime_resource, messages)
    return get_providers().queue.publish(queue_spec(workload_class), messages, deadline=deadline)


def _outbound(workload_class: WorkloadClass, candidate: _Candidate, *, trace_id: str, now: datetime) -> OutboundMessage:
    return OutboundMessage(
        data=candidate.data,
        attributes={
            ATTR_CLASS: workload_class.slug,
            ATTR_IDEMPOTENCY_KEY: candidate.key,
            ATTR_SCHEMA_VERSION: str(workload_class.schema_version),
            ATTR_INGESTED_AT: now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z",
            ATTR_TRACE_ID: trace_id,
        },
        ordering_key=candidate.ordering_key,
    )


def idempotency_records_prune(*, now: datetime, batch_size: int = 5000) -> int:
    """Delete expired idempotency keys (in batches, so a big backlog never holds a long lock)."""
    deleted = 0
    while True:
        ids = list(IdempotencyRecord.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += IdempotencyRecord.objects.filter(pk__in=ids).delete()[0]
