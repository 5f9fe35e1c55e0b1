"""What ingestion's modules pass between them: an event's outcome (`EventResult`, with its
`Status`) and a valid event ready to be claimed and published (`Candidate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from workloads.domain.payloads import FieldError


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
class Candidate:
    """A valid event of one request, with everything its claim and its message need. The trace id
    and the time are the request's: events of several requests share a group commit."""

    index: int
    payload: dict
    key: str
    ordering_key: str
    fingerprint: str
    data: bytes  # the message data: the canonical JSON, encoded once for the fingerprint and the publish
    trace_id: str = ""
    now: datetime | None = None


def seen_before(index: int, key: str, *, same: bool, message_id: str, ordering_key: str) -> EventResult:
    """A key already taken: the original receipt when the payload is the same, else a conflict."""
    if not same:
        return EventResult(index, Status.CONFLICT, idempotency_key=key)
    return EventResult(index, Status.DUPLICATE, idempotency_key=key, message_id=message_id, ordering_key=ordering_key)
