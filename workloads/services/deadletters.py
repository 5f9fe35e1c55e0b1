"""Dead letters: discard, and redrive (replay) with preview, dry run and edit (the mirror sync:
services/deadletter_mirror.py; a replay's run, in chunks: services/replay_run.py).

Replay. A named replay is an Action of kind `replay` whose steps are dead-letter rows: each
publishes its row's message to the class's topic again (original attributes without the
dead-letter and error ones, the idempotency key, the replay counter plus one) and marks the row
replayed with its new message id, at most once per row whatever crashes or overlapping replays
happen (services/replay_run.py says how).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from workloads.domain.payloads import canonical_json, hostile_input_error, normalize_and_validate
from workloads.errors import ApplicationError, NotFoundError
from workloads.models import (
    Action,
    ActionKind,
    DeadLetter,
    DeadLetterStatus,
    PayloadFormat,
    WorkloadClass,
)
from workloads.models.deadletters import PAYLOAD_LIMIT_BYTES
from workloads.providers import get_providers
from workloads.providers.base import (
    ATTR_IDEMPOTENCY_KEY,
    ATTR_REPLAY_COUNT,
    ATTR_REPLAY_OF,
    OutboundMessage,
    ProviderError,  # noqa: F401 (callers catch the replay's provider errors from here)
)
from workloads.providers.specs import queue_spec
from workloads.selectors.deadletters import (  # noqa: F401 (the services take them)
    REPLAYABLE_BY_DEFAULT,
    DeadLetterFilter,
    dead_letters_to_act_on,
)
from workloads.services.actions import action_request
from workloads.services.audit import audit_event_record
from workloads.services.deadletter_mirror import DEAD_LETTER_ATTRIBUTE_PREFIX, ERROR_ATTRIBUTES

if TYPE_CHECKING:
    from workloads.services.replay_run import ChunkRow

logger = logging.getLogger(__name__)


DEFAULT_REPLAY_VELOCITY = 50.0  # messages per second
MIN_REPLAY_VELOCITY, MAX_REPLAY_VELOCITY = 0.1, 1000.0
MAX_SELECTED_IDS = 1000
# A replay publishes its messages in chunks of at most this many seconds at its velocity cap.
REPLAY_CHUNK_SECONDS = 0.5


# --- Filters, preview and dry run --------------------------------------------------------------------
def _check_selection(selection: DeadLetterFilter) -> None:
    if len(selection.ids) > MAX_SELECTED_IDS:
        raise ApplicationError(
            f"Select at most {MAX_SELECTED_IDS} dead letters at once, or use a filter.", code="too_many", status=400
        )
    if selection.ids:
        found = set(dead_letters_to_act_on(selection).values_list("pk", flat=True))
        missing = sorted(set(selection.ids) - found)
        if missing:
            raise NotFoundError(
                f"No dead letters of {selection.workload_class.slug} with ids {', '.join(map(str, missing[:20]))}."
            )


# Why a row cannot be replayed, in SQL (for counts) and in Python (per row, at run time).
_LOOP_GUARD_Q = Q(replay_count__gte=F("workload_class__replay_limit"))
_TRUNCATED_Q = Q(payload_truncated=True, edited_payload__isnull=True)
_DISCARDED_Q = Q(status=DeadLetterStatus.DISCARDED)


def replay_refusal(row: DeadLetter | ChunkRow, *, action: Action | None = None) -> str:
    """Why this row cannot be replayed now ("" when it can)."""
    if row.status == DeadLetterStatus.DISCARDED:
        when = f" at {row.discarded_at:%Y-%m-%d %H:%M} UTC" if row.discarded_at else ""
        by = row.discarded_by_label or "system"
        return f"It was discarded by {by}{when}; discarded dead letters are kept, not replayed."
    if action is not None and row.status == DeadLetterStatus.REPLAYED:
        if row.replay_action_id == action.pk:
            return f"It was already replayed by this replay (as message {row.replayed_message_id})."
        if row.replayed_at and row.replayed_at >= action.created_at:
            # Two overlapping replays of one message: the later one must not publish it again.
            return f"It was replayed by replay #{row.replay_action_id} after this replay was requested."
    limit = row.workload_class.replay_limit
    if row.replay_count >= limit:
        return (
            f"It has been replayed {row.replay_count} times and {row.workload_class.slug} allows {limit} "
            "(loop guard): fix the cause or edit the payload of a new message instead."
        )
    if row.payload_truncated and row.edited_payload is None:
        return (
            f"Its payload ({row.payload_size} bytes) was cut at {PAYLOAD_LIMIT_BYTES // 1024} KiB when mirrored: "
            "edit and replay it, or seek the subscription."
        )
    return ""


@dataclass(frozen=True)
class ReplayPreview:
    matching: int
    replayable: int
    refused_loop_guard: int
    refused_truncated: int
    refused_discarded: int
    # Every dead letter of the class in the selected statuses matches (a filter, not `ids`).
    selects_whole_class: bool = False

    @property
    def to_discard(self) -> int:
        return self.matching - self.refused_discarded


def replay_preview(*, selection: DeadLetterFilter) -> ReplayPreview:
    """How many dead letters the filter selects and how many of them a replay would publish."""
    counts = dead_letters_to_act_on(selection).aggregate(
        matching=Count("pk"),
        replayable=Count("pk", filter=~(_LOOP_GUARD_Q | _TRUNCATED_Q | _DISCARDED_Q)),
        loop_guard=Count("pk", filter=_LOOP_GUARD_Q & ~_DISCARDED_Q),
        truncated=Count("pk", filter=_TRUNCATED_Q & ~_LOOP_GUARD_Q & ~_DISCARDED_Q),
        discarded=Count("pk", filter=_DISCARDED_Q),
    )
    whole_class = False
    if not selection.ids and counts["matching"]:
        in_class = DeadLetterFilter(workload_class=selection.workload_class, statuses=selection.statuses)
        whole_class = counts["matching"] >= in_class.queryset().count()
    return ReplayPreview(
        matching=counts["matching"],
        replayable=counts["replayable"],
        refused_loop_guard=counts["loop_guard"],
        refused_truncated=counts["truncated"],
        refused_discarded=counts["discarded"],
        selects_whole_class=whole_class,
    )


@dataclass(frozen=True)
class ReplayAudience:
    """Who else receives a replay: Pub/Sub delivers what is published to the class topic to every
    subscription on it, not only the class's worker subscription."""

    other_subscriptions: list[str]
    error: str = ""  # why the subscriptions could not be listed ("" when they were)


def replay_audience(*, workload_class: WorkloadClass) -> ReplayAudience:
    """The subscriptions on the class topic besides its worker subscription (an audit sink, a
    second consumer, an old subscription someone forgot): each gets every replayed message too."""
    spec = queue_spec(workload_class)
    try:
        names = get_providers().queue.topic_subscriptions(spec)
    except ProviderError as exc:
        return ReplayAudience([], error=exc.message)
    return ReplayAudience([name for name in names if name != spec.subscription])


# --- The bulk guard -----------------------------------------------------------------------------------
def count_to_confirm(*, selection: DeadLetterFilter, preview: ReplayPreview, count: int) -> int | None:
    """How many dead letters an operator must confirm (`confirm_count`) before a replay or discard
    of `count` of them goes ahead, or None when it needs no confirmation. The empty-filter guard
    alone can be walked around with a very wide time range, so this guards on what would match:
    more than DEAD_LETTER_BULK_CONFIRM_THRESHOLD, or every dead letter of the class. An explicit
    selection (`ids`, at most MAX_SELECTED_IDS) was confirmed row by row."""
    if selection.ids or count == 0:
        return None
    if count > settings.DEAD_LETTER_BULK_CONFIRM_THRESHOLD or preview.selects_whole_class:
        return count
    return None


def _check_confirmation(
    *, selection: DeadLetterFilter, preview: ReplayPreview, count: int, verb: str, confirm_count: int | None
) -> None:
    needed = count_to_confirm(selection=selection, preview=preview, count=count)
    if needed is None or confirm_count == needed:
        return
    slug = selection.workload_class.slug
    scope = f"every {'/'.join(selection.statuses)} dead letter of {slug}" if preview.selects_whole_class else None
    what = f"{needed} dead letter{'' if needed == 1 else 's'} of {slug}" + (f" ({scope})" if scope else "")
    if confirm_count is None:
        message = f"This would {verb} {what}: send confirm_count={needed} to confirm."
    else:
        message = (
            f"confirm_count is {confirm_count} but this would now {verb} {what}: check the filter, then "
            f"confirm {needed}."
        )
    raise ApplicationError(
        message, code="confirmation_required", status=400, extra={"confirm_count": needed, "preview": preview.__dict__}
    )


@dataclass
class DryRunItem:
    id: int
    message_id: str
    error_signature: str
    replay_count: int
    refusal: str = ""
    attributes: dict = field(default_factory=dict)


@dataclass
class DryRun:
    preview: ReplayPreview
    items: list[DryRunItem]  # the first `limit` rows in replay order, with what would be published


def replay_dry_run(*, selection: DeadLetterFilter, limit: int = 50) -> DryRun:
    """Plan a replay without publishing or writing anything: what would be replayed, in order,
    with the attributes each message would carry, and why the others would be refused."""
    _check_selection(selection)
    preview = replay_preview(selection=selection)
    rows = dead_letters_to_act_on(selection).select_related("workload_class").order_by("last_seen", "pk")[:limit]
    items = []
    for row in rows:
        refusal = replay_refusal(row)
        items.append(
            DryRunItem(
                id=row.pk,
                message_id=row.message_id,
                error_signature=row.error_signature,
                replay_count=row.replay_count,
                refusal=refusal,
                attributes={} if refusal else replay_message(row).attributes,
            )
        )
    return DryRun(preview=preview, items=items)


# --- Replay ------------------------------------------------------------------------------------------
def _payload_bytes(row: DeadLetter | ChunkRow) -> bytes:
    if row.edited_payload is not None:
        return canonical_json(row.edited_payload).encode()
    if row.payload_format == PayloadFormat.JSON:
        # Ingestion publishes canonical JSON, so this is byte for byte what was dead-lettered.
        return canonical_json(row.payload).encode()
    if row.payload_format == PayloadFormat.BASE64:
        return base64.b64decode(row.payload_text)
    return row.payload_text.encode()


def replay_message(row: DeadLetter | ChunkRow) -> OutboundMessage:
    """The message a replay publishes for this row."""
    attributes = {
        name: value
        for name, value in row.attributes.items()
        if name not in ERROR_ATTRIBUTES and not name.startswith(DEAD_LETTER_ATTRIBUTE_PREFIX)
    }
    if row.idempotency_key:
        attributes[ATTR_IDEMPOTENCY_KEY] = row.idempotency_key
    attributes[ATTR_REPLAY_COUNT] = str(row.replay_count + 1)
    attributes[ATTR_REPLAY_OF] = row.message_id
    return OutboundMessage(data=_payload_bytes(row), attributes=attributes, ordering_key=row.ordering_key)


def _velocity(velocity: float | None) -> float:
    value = DEFAULT_REPLAY_VELOCITY if velocity is None else float(velocity)
    if not MIN_REPLAY_VELOCITY <= value <= MAX_REPLAY_VELOCITY:
        raise ApplicationError(
            f"The velocity must be {MIN_REPLAY_VELOCITY} to {MAX_REPLAY_VELOCITY:g} messages per second.",
            code="invalid_velocity",
            status=400,
        )
    return value


def replay_request(
    *,
    actor,
    selection: DeadLetterFilter,
    velocity: float | None = None,
    name: str = "",
    reason: str = "",
    not_before: datetime | None = None,
    enqueue: bool = True,
    confirm_count: int | None = None,
) -> Action:
    """Start a named replay of the selected dead letters (refused when nothing would be replayed,
    and without `confirm_count` when it would replay many or all of the class's, see
    `count_to_confirm`)."""
    velocity = _velocity(velocity)
    _check_selection(selection)
    preview = replay_preview(selection=selection)
    if preview.replayable == 0:
        raise ApplicationError(
            f"Nothing to replay: {preview.matching} dead letters match, none of them replayable "
            f"({preview.refused_loop_guard} past the replay limit, {preview.refused_truncated} truncated, "
            f"{preview.refused_discarded} discarded).",
            code="nothing_to_replay",
            extra={"preview": preview.__dict__},
        )
    _check_confirmation(
        selection=selection, preview=preview, count=preview.replayable, verb="replay", confirm_count=confirm_count
    )
    workload_class = selection.workload_class
    name = name or f"Replay {workload_class.slug}: {selection.describe()}"
    return action_request(
        kind=ActionKind.REPLAY,
        actor=actor,
        reason=reason,
        workload_class=workload_class,
        target=workload_class.topic,
        name=name,
        parameters={
            "filter": selection.as_parameters(),
            "velocity": velocity,
            "preview": preview.__dict__,
        },
        not_before=not_before,
        enqueue=enqueue,
    )


@transaction.atomic
def dead_letter_edit_and_replay(
    *,
    actor,
    dead_letter: DeadLetter,
    payload,
    velocity: float | None = None,
    reason: str = "",
    enqueue: bool = True,
    expected_version: int | None = None,
) -> Action:
    """Keep an operator's corrected payload next to the original and replay it. The payload is
    normalized and validated against the class's schema first (invalid: 400 with field errors).
    With expected_version (the `edit_version` the writer read), a concurrent edit is a 409."""
    stored_as_json = hostile_input_error(payload, allow_nul=False)  # edited_payload is jsonb: no NUL
    if stored_as_json is not None:
        field = f"payload.{stored_as_json.field}" if stored_as_json.field else "payload"
        raise ApplicationError(
            "The edited payload cannot be stored.",
            code="validation_error",
            status=400,
            extra={"errors": {field: [stored_as_json.message]}},
        )
    row = DeadLetter.objects.select_for_update().select_related("workload_class").get(pk=dead_letter.pk)
    if expected_version is not None and row.edit_version != expected_version:
        raise ApplicationError(
            f"Dead letter {row.pk} was edited by {row.edited_by_label or 'someone'} since you loaded it "
            f"(version {row.edit_version}, yours {expected_version}): reload it and edit again.",
            code="edit_conflict",
            status=409,
            extra={"edit_version": row.edit_version},
        )
    checked = normalize_and_validate(payload, row.workload_class.payload_schema)
    if not checked.ok:
        raise ApplicationError(
            "The edited payload does not match the class's schema.",
            code="validation_error",
            status=400,
            extra={"errors": {f"payload.{e.field}" if e.field else "payload": [e.message] for e in checked.errors}},
        )
    before = row.edited_payload
    row.edited_payload = checked.payload
    row.edited_by = actor if actor is not None and actor.pk else None
    row.edited_by_label = actor.get_username() if actor is not None else "system"
    row.edited_at = timezone.now()
    row.edit_version += 1
    refusal = replay_refusal(row)
    if refusal:
        raise ApplicationError(f"Dead letter {row.pk} cannot be replayed: {refusal}", code="not_replayable")
    row.save(update_fields=["edited_payload", "edited_by", "edited_by_label", "edited_at", "edit_version"])
    audit_event_record(
        actor=actor,
        action="dead_letter.edit",
        target=row,
        target_repr=f"dead letter {row.message_id}",
        changes={"edited_payload": [before, row.edited_payload]},
        workload_class_slug=row.workload_class.slug,
        extra={"reason": reason},
    )
    selection = DeadLetterFilter(workload_class=row.workload_class, ids=(row.pk,))
    return replay_request(
        actor=actor,
        selection=selection,
        velocity=velocity,
        name=f"Edit and replay {row.workload_class.slug} {row.message_id}",
        reason=reason,
        enqueue=enqueue,
    )


# --- Discard -------------------------------------------------------------------------------------------
@transaction.atomic
def dead_letters_discard(
    *, actor, selection: DeadLetterFilter, reason: str = "", confirm_count: int | None = None
) -> int:
    """Mark the selected dead letters discarded (rows stay, for the audit trail); returns how many.
    One UPDATE, so any number of rows is discarded atomically. Many, or all of the class's, need
    `confirm_count` (see `count_to_confirm`)."""
    _check_selection(selection)
    preview = replay_preview(selection=selection)
    _check_confirmation(
        selection=selection, preview=preview, count=preview.to_discard, verb="discard", confirm_count=confirm_count
    )
    rows = dead_letters_to_act_on(selection).exclude(status=DeadLetterStatus.DISCARDED)
    ids = list(rows.select_for_update().values_list("pk", flat=True))
    now = timezone.now()
    count = DeadLetter.objects.filter(pk__in=ids).update(
        status=DeadLetterStatus.DISCARDED,
        discarded_by=actor if actor is not None and actor.pk else None,
        discarded_by_label=actor.get_username() if actor is not None else "system",
        discarded_at=now,
        discard_reason=reason,
    )
    audit_event_record(
        actor=actor,
        action="dead_letter.discard",
        target_repr=f"{count} dead letters of {selection.workload_class.slug}",
        workload_class_slug=selection.workload_class.slug,
        extra={"filter": selection.as_parameters(), "count": count, "ids": ids[:200], "reason": reason},
    )
    return count
