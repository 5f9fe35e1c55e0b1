"""Claim idempotency keys and publish: the one code path for a single event, a batch, and a group
of both from several requests (workloads/services/ingestion_groups.py hands groups over).

A `Claim` is one request's valid events for one destination. Whatever the number of claims, the
keys are claimed with one statement per class, and the events published with one publish per
destination:

- on the local queue (its publish writes to our own database) the claims, the messages and the
  receipts commit in one transaction, so nothing is ever half-written; a failure fails every
  claim of the group on it and nothing of them is kept (the group committer then retries each
  request alone);
- on Pub/Sub (and for a class running on Celery) the publish is a network call and no
  transaction spans it: the claims commit first, each destination's messages are published in
  one call (the client batches them, the futures are awaited together) within
  INGESTION_PUBLISH_TIMEOUT_SECONDS, and only the keys of the messages that failed are given back
  (the compensation), so a client's retry is accepted once. Those failures are the failing
  requests' own: the other claims of the group keep their receipts.

A group can hold both kinds (a local-queue class beside a class on Celery, or a migration plan
between them): the joined claims commit first. Each claim is `settled` once its claims committed:
its results (or its own publish error) are then final, and when the networked part fails as a
whole after that (its claims' transaction), the call raises with the joined claims settled and
accepted; a retry (`claim_and_publish` again, as the group committer does) runs only the claims
not settled, so a committed event is never answered as a duplicate of itself.

Keys must be unique per class within one call (the group committer defers a request whose key an
earlier request of the group holds to the next group, where it reads the committed receipt).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from workloads.fastsql.writes import insert_rows, update_rows
from workloads.models import IdempotencyRecord, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.base import (
    ATTR_CLASS,
    ATTR_IDEMPOTENCY_KEY,
    ATTR_INGESTED_AT,
    ATTR_SCHEMA_VERSION,
    ATTR_TRACE_ID,
    OutboundMessage,
    ProviderError,
)
from workloads.providers.celery import celery_send
from workloads.providers.specs import queue_spec
from workloads.runtimes import Runtime
from workloads.services.ingestion_events import Candidate, EventResult, Status, seen_before
from workloads.services.ingestion_lookups import Guard, StaleLookup, stale_guards

# A claim still without a receipt this long after its publish deadline was left by a request that
# died between claim and publish: its key is free again.
ABANDONED_CLAIM_MARGIN = 30
RECEIPT_POLL_SECONDS = 0.05

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Claim:
    """One request's valid events for one destination: the keys are claimed under
    `workload_class`, the events published to `destination` (the class itself, or a migration
    plan's target). `results` (by the candidates' indexes) or `error` is the outcome. `guard`: the
    cached lookups the request rests on, re-checked before anything is claimed
    (workloads/services/ingestion_lookups.py); a stale one makes `error` a StaleLookup."""

    workload_class: WorkloadClass
    destination: WorkloadClass
    candidates: list[Candidate]
    guard: Guard | None = None
    results: dict[int, EventResult] = field(default_factory=dict)
    error: BaseException | None = None
    settled: bool = False  # its claims committed: `results` and `error` are its final outcome


def claim_and_publish(claims: list[Claim]) -> None:
    """Give each claim not settled yet its results, or its error when its own publish failed, and
    settle it. Raises when a part of the group failed before anything of that part was kept: the
    claims of that part stay unsettled (nothing of them happened), those settled before keep their
    outcome, and calling again with the same claims runs only the unsettled ones."""
    pending = [c for c in claims if not c.settled]
    for claim in pending:
        claim.results, claim.error = {}, None
    pending = _still_fresh(pending)
    queue = get_providers().queue
    # A Celery broker is a network call outside our database, like Pub/Sub: the networked path.
    joined = [c for c in pending if queue.publish_joins_transaction and c.destination.runtime != Runtime.CELERY]
    networked = [c for c in pending if c not in joined]
    if joined:
        _in_one_transaction(joined)
    if networked:
        _claims_then_publishes(networked)


def _still_fresh(claims: list[Claim]) -> list[Claim]:
    """The claims whose cached lookups still hold (one statement for the whole group); the others
    get a StaleLookup and are left out."""
    guards = [claim.guard for claim in claims if claim.guard is not None]
    if not guards:
        return claims
    stale = stale_guards(guards)
    if not stale:
        return claims
    for claim in claims:
        if claim.guard in stale:
            claim.error, claim.settled = StaleLookup(), True  # nothing of it happens: final
    return [claim for claim in claims if claim.error is None]


def _in_one_transaction(claims: list[Claim]) -> None:
    results: dict[Claim, dict[int, EventResult]] = {}
    with transaction.atomic():
        mine, record_ids = _claim_all(claims, results)
        receipts: list[tuple[str, int]] = []
        for destination, members in _by_destination(mine):
            candidates = [candidate for _claim, candidate in members]
            message_ids = _publish(destination, candidates)
            for (claim, candidate), message_id in zip(members, message_ids, strict=True):
                results[claim][candidate.index] = _accepted(candidate, message_id)
                receipts.append((message_id, record_ids[claim.workload_class.pk, candidate.key]))
        _store_message_ids(receipts)
    for claim in claims:  # committed: only now are the results true
        claim.results, claim.settled = results[claim], True


def _claims_then_publishes(claims: list[Claim]) -> None:
    results: dict[Claim, dict[int, EventResult]] = {}
    with transaction.atomic():
        mine, record_ids = _claim_all(claims, results)
    # Committed: from here on each claim's outcome is its own (accepted, or its publish's error),
    # and nothing below raises.
    for claim in claims:
        claim.results, claim.settled = results[claim], True
    receipts: list[tuple[str, int]] = []
    for destination, members in _by_destination(mine):
        published: dict[int, str] = {}
        try:
            _publish(
                destination,
                [candidate for _claim, candidate in members],
                deadline=settings.INGESTION_PUBLISH_TIMEOUT_SECONDS,
                on_published=published.__setitem__,
            )
        except Exception as exc:  # noqa: BLE001 - the failing requests answer it; the others keep theirs
            failed = [(claim, c) for position, (claim, c) in enumerate(members) if position not in published]
            _release_claims([record_ids[claim.workload_class.pk, c.key] for claim, c in failed])
            for claim, _candidate in failed:
                claim.error = claim.error or exc
        for position, message_id in published.items():
            claim, candidate = members[position]
            claim.results[candidate.index] = _accepted(candidate, message_id)
            receipts.append((message_id, record_ids[claim.workload_class.pk, candidate.key]))
    try:
        _store_message_ids(receipts)
    except Exception as exc:  # noqa: BLE001 - the claims are settled: their requests hear it
        # Published but not recorded: the keys count as abandoned after the deadline, and the
        # worker kit's completed-key check skips a second copy. The requests hear the error.
        logger.exception("Could not record %d published message ids", len(receipts))
        for claim in claims:
            if any(result.status == Status.ACCEPTED for result in claim.results.values()):
                claim.error = claim.error or exc


def _claim_all(
    claims: list[Claim], results: dict[Claim, dict[int, EventResult]]
) -> tuple[list[tuple[Claim, Candidate]], dict[tuple[int, str], int]]:
    """Claim every claim's keys, one statement per class (in the classes' order, so two groups
    lock their rows in the same order). Fills `results` with the events whose keys were taken and
    returns the (claim, candidate) pairs this call claimed and {(class id, key): record id}."""
    by_class: dict[int, list[tuple[Claim, Candidate]]] = defaultdict(list)
    for claim in claims:
        results[claim] = {}
        for candidate in claim.candidates:
            by_class[claim.workload_class.pk].append((claim, candidate))
    mine: list[tuple[Claim, Candidate]] = []
    record_ids: dict[tuple[int, str], int] = {}
    for class_id in sorted(by_class):
        members = by_class[class_id]
        if len({candidate.key for _claim, candidate in members}) != len(members):
            raise ValueError("claim_and_publish needs the keys of one class to be unique")
        workload_class = members[0][0].workload_class
        claimed, stored = _claim(workload_class, [candidate for _claim, candidate in members])
        for claim, candidate in members:
            if candidate.key in claimed:
                mine.append((claim, candidate))
                record_ids[class_id, candidate.key] = claimed[candidate.key]
            else:
                record = stored[candidate.key]
                results[claim][candidate.index] = seen_before(
                    candidate.index,
                    candidate.key,
                    same=record.payload_fingerprint == candidate.fingerprint,
                    message_id=record.message_id,
                    ordering_key=record.ordering_key,
                )
    return mine, record_ids


def _by_destination(mine: list[tuple[Claim, Candidate]]) -> list[tuple[WorkloadClass, list[tuple[Claim, Candidate]]]]:
    by_destination: dict[int, list[tuple[Claim, Candidate]]] = defaultdict(list)
    for claim, candidate in mine:
        by_destination[claim.destination.pk].append((claim, candidate))
    return [(members[0][0].destination, members) for members in by_destination.values()]


def _claim(
    workload_class: WorkloadClass, candidates: list[Candidate]
) -> tuple[dict[str, int], dict[str, IdempotencyRecord]]:
    """Claim the candidates' keys (inside the caller's transaction). Returns {key: record id} of
    the keys this call claimed and the stored records of the others."""
    now = max(c.now for c in candidates)
    claimed = _claim_keys(workload_class, candidates)
    taken = [c for c in candidates if c.key not in claimed]
    stored: dict[str, IdempotencyRecord] = {}
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
            claimed.update(_claim_keys(workload_class, expired))
            lost = [c for c in expired if c.key not in claimed]
            stored.update(_stored_records(workload_class, lost))  # a concurrent request was first
    return claimed, stored


def _accepted(candidate: Candidate, message_id: str) -> EventResult:
    return EventResult(
        candidate.index,
        Status.ACCEPTED,
        idempotency_key=candidate.key,
        message_id=message_id,
        ordering_key=candidate.ordering_key,
    )


def _release_claims(record_ids: list[int]) -> None:
    """Give back the keys of a publish that failed (only rows still without a receipt)."""
    if not record_ids:
        return
    try:
        IdempotencyRecord.objects.filter(pk__in=record_ids, message_id="").delete()
    except Exception:  # noqa: BLE001 - the publish's error is what its requests hear
        # The claims stay; once past the publish deadline they count as abandoned and are taken over.
        logger.exception("Could not give back %d idempotency keys after a failed publish", len(record_ids))


def await_receipts(claim: Claim) -> None:
    """A duplicate of a key whose first request is still publishing (its claim is committed, its
    receipt not yet) waits for that receipt, within the publish deadline. If the first request
    gave its key back, or is still not done, this one answers 503 (the client retries). Called by
    the request's own thread, so a wait never holds up the rest of its group."""
    results = claim.results
    waiting = {
        c.key: c.index
        for c in claim.candidates
        if c.index in results and results[c.index].status == Status.DUPLICATE and not results[c.index].message_id
    }
    give_up_at = time.monotonic() + settings.INGESTION_PUBLISH_TIMEOUT_SECONDS
    while waiting:
        stored = IdempotencyRecord.objects.filter(workload_class=claim.workload_class, key__in=list(waiting))
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
                resource=queue_spec(claim.workload_class).topic,
            )
        time.sleep(RECEIPT_POLL_SECONDS)


# What a claim writes of an IdempotencyRecord (the message id comes with the publish).
_KEY_RECORD_FIELDS = (
    "workload_class",
    "key",
    "payload_fingerprint",
    "ordering_key",
    "trace_id",
    "created_at",
    "expires_at",
    "message_id",
)


def _claim_keys(workload_class: WorkloadClass, candidates: list[Candidate]) -> dict[str, int]:
    """Insert the keys that are free; returns {key: record id} for the ones this call inserted.

    One `INSERT ... ON CONFLICT DO NOTHING RETURNING` instead of an insert and a read-back. A key
    another transaction holds uncommitted waits for it here, then counts as taken (or free, if
    that transaction rolled back). Sorted, so two groups sharing keys lock them in the same order
    (no deadlock).
    """
    ttl = timedelta(seconds=workload_class.dedup_ttl_seconds)
    inserted = insert_rows(
        IdempotencyRecord,
        _KEY_RECORD_FIELDS,
        [
            (workload_class.pk, c.key, c.fingerprint, c.ordering_key, c.trace_id, c.now, c.now + ttl, "")
            for c in sorted(candidates, key=lambda c: c.key)
        ],
        ignore_conflicts=True,
        returning=("id", "key"),
        json_parameter=True,  # plain values: one JSON document instead of eight arrays to adapt
    )
    return {key: record_id for record_id, key in inserted}


def _stored_records(workload_class: WorkloadClass, candidates: list[Candidate]) -> dict[str, IdempotencyRecord]:
    keys = [c.key for c in candidates]
    return {r.key: r for r in IdempotencyRecord.objects.filter(workload_class=workload_class, key__in=keys)}


def _store_message_ids(receipts: list[tuple[str, int]]) -> None:
    """The receipt a duplicate gets back: (message id, record id) pairs, one UPDATE from one JSON
    parameter on PostgreSQL whatever the group's size (workloads/fastsql/)."""
    if receipts:
        update_rows(
            IdempotencyRecord,
            ["message_id"],
            [(record_id, message_id) for message_id, record_id in receipts],
            json_parameter=True,
        )


def _publish(
    destination: WorkloadClass,
    candidates: list[Candidate],
    *,
    deadline: float | None = None,
    on_published=None,
) -> list[str]:
    messages = [_outbound(destination, c) for c in candidates]
    if destination.runtime == Runtime.CELERY:
        # Always networked (claim_and_publish), so always with the request's publish deadline.
        return celery_send(
            destination.runtime_resource,
            messages,
            deadline=settings.INGESTION_PUBLISH_TIMEOUT_SECONDS if deadline is None else deadline,
            on_published=on_published,
        )
    return get_providers().queue.publish(
        queue_spec(destination), messages, deadline=deadline, on_published=on_published
    )


def _outbound(destination: WorkloadClass, candidate: Candidate) -> OutboundMessage:
    return OutboundMessage(
        data=candidate.data,
        attributes={
            ATTR_CLASS: destination.slug,
            ATTR_IDEMPOTENCY_KEY: candidate.key,
            ATTR_SCHEMA_VERSION: str(destination.schema_version),
            ATTR_INGESTED_AT: candidate.now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z",
            ATTR_TRACE_ID: candidate.trace_id,
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
