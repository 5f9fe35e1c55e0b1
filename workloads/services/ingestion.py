"""Ingestion: validate and normalize events, deduplicate by idempotency key, publish.

Deduplication follows Stripe and the IETF idempotency-key draft: within the class's dedup TTL the
same key with the same payload fingerprint returns the original receipt, and the same key with a
different payload is a conflict. It holds under concurrency because the key is claimed by an
INSERT on a unique constraint; a concurrent request with the same key waits on that row and then
reads the winner's receipt.

This module checks the events and builds each valid one's key, message data and fingerprint, in
the request's own thread. Claiming the keys and publishing is one code path for a single event, a
batch and a group of requests (workloads/services/ingestion_claims.py): concurrent requests of
a process share one claim-and-publish through the group committer
(workloads/services/ingestion_groups.py). With the local provider the publish is part of the
claims' transaction, so nothing is ever half-written. With Pub/Sub the publish is a network call
and no transaction spans it: the claims commit, the publish waits at most
INGESTION_PUBLISH_TIMEOUT_SECONDS, then the receipts are written; a failed or timed-out publish
gives its keys back and the request answers 503 with Retry-After, so the client's retry is
accepted once. A concurrent request with the same key waits for the receipt (within the same
deadline). A publish given up on that still lands later, or a crash between publish and
receipt, leaves a message whose key is not recorded, which the worker kit's completed-key check
then skips (at-least-once delivery, effectively-once processing).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from workloads.domain.payloads import CheckedEvent, FieldError, canonical_json, normalize_and_validate
from workloads.models import WorkloadClass
from workloads.providers.limits import MAX_MESSAGE_BYTES, MAX_ORDERING_KEY_BYTES, utf8_len
from workloads.runtimes import routes_to_target
from workloads.services.ingestion_claims import Claim, await_receipts, idempotency_records_prune
from workloads.services.ingestion_events import Candidate, EventResult, Status, seen_before
from workloads.services.ingestion_groups import group_committer
from workloads.services.ingestion_lookups import Guard
from workloads.validation import render_key_template

__all__ = [
    "MAX_BATCH_EVENTS",
    "MAX_BODY_BYTES",
    "MAX_KEY_LENGTH",
    "EventResult",
    "Status",
    "events_ingest",
    "idempotency_records_prune",
]

MAX_BATCH_EVENTS = 1000
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_KEY_LENGTH = 255
ATTRIBUTES_ALLOWANCE_BYTES = 512  # attribute names, ingest time, trace id, schema version


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
    return Candidate(index, payload, key, ordering_key, hashlib.sha256(data).hexdigest(), data)


def events_ingest(
    *,
    workload_class: WorkloadClass,
    events: list,
    idempotency_key: str | None = None,
    trace_id: str = "",
    now: datetime,
    guard: Guard | None = None,
) -> list[EventResult]:
    """Ingest events for one class; returns one result per event, in order. `guard`: the stamps of
    the cached token and class the caller used (workloads/services/ingestion_lookups.py); when one
    changed before anything was claimed, raises StaleLookup and nothing was written."""
    results: dict[int, EventResult] = {}
    candidates: list[Candidate] = []
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
    first_by_key: dict[str, Candidate] = {}
    unique: list[Candidate] = []
    repeats: list[Candidate] = []
    for candidate in candidates:
        if candidate.key in first_by_key:
            repeats.append(candidate)
        else:
            first_by_key[candidate.key] = candidate
            unique.append(candidate)

    if unique:
        trace_id = trace_id or uuid.uuid4().hex
        for candidate in unique:
            candidate.trace_id, candidate.now = trace_id, now
        claims = [
            Claim(workload_class, destination, group, guard=guard)
            for destination, group in _routed(workload_class, unique)
        ]
        group_committer.commit(claims)
        for claim in claims:
            if claim.error is not None:
                raise claim.error
            await_receipts(claim)
            results.update(claim.results)
    for repeat in repeats:
        first = results[first_by_key[repeat.key].index]
        same = repeat.fingerprint == first_by_key[repeat.key].fingerprint and first.status != Status.CONFLICT
        results[repeat.index] = seen_before(
            repeat.index, repeat.key, same=same, message_id=first.message_id, ordering_key=first.ordering_key
        )
    return [results[index] for index in range(len(events))]


def _routed(workload_class: WorkloadClass, candidates: list[Candidate]) -> list[tuple[WorkloadClass, list]]:
    """The migration switch: a plan's share of the keys (by a stable hash) goes to its target
    class, the rest to this class's own runtime. Keys are claimed under this class either way, so
    an event is deduplicated across both sides and never sent to both."""
    if not (workload_class.route_percent and workload_class.route_to_id):
        return [(workload_class, candidates)]
    moved: list[Candidate] = []
    kept: list[Candidate] = []
    for candidate in candidates:  # one hash per key
        (moved if routes_to_target(candidate.key, workload_class.route_percent) else kept).append(candidate)
    return [(side, group) for side, group in ((workload_class, kept), (workload_class.route_to, moved)) if group]
