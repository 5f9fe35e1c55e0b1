"""What every part of the local queue shares: Pub/Sub's formats, and the checks on what goes in
(outbound messages, ack ids)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from workloads.providers.base import OutboundMessage
from workloads.providers.limits import message_problems
from workloads.providers.local.names import invalid

PUBLISH_BATCH = 500

TOPIC_HINT = "ensure the class's queue resources first (Queue.ensure_resources)."
SUBSCRIPTION_HINT = "ensure the class's queue resources first (Queue.ensure_resources)."


def rfc3339(moment: datetime) -> str:
    """UTC with milliseconds and a trailing Z, as Pub/Sub writes publish times in attributes."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def check_outbound(message: OutboundMessage, topic: str) -> None:
    if not isinstance(message.data, bytes | bytearray | memoryview):
        raise invalid(f"Message data for {topic} must be bytes, got {type(message.data).__name__}.", topic)
    for key, value in message.attributes.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise invalid(f"Message attributes for {topic} must map non-empty strings to strings: {key!r}.", topic)
    problems = message_problems(message)  # what real Pub/Sub would refuse, refused here too
    if problems:
        raise invalid(f"Cannot publish to {topic}: {' '.join(problems)}", topic)


def parse_ack_ids(ack_ids: Iterable[str]) -> dict[str, list[int]]:
    """`<delivery id>:<lease token>` ack ids grouped by token (one lease batch shares a token)."""
    leases: dict[str, list[int]] = defaultdict(list)
    for ack_id in ack_ids:
        pk, _, token = str(ack_id).partition(":")
        if not pk.isdigit() or not token:
            raise invalid(f"{ack_id!r} is not an ack id of the local queue.")
        leases[token].append(int(pk))
    return dict(leases)
