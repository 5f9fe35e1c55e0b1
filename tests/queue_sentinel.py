"""That nothing else is waiting on a subscription, proved by a message instead of by an empty wait.

A pull that comes back empty after a timeout only says nothing arrived during that wait; the tests
that asserted absence that way spent the whole timeout on every run. Here a sentinel is published
behind whatever is there and the subscription is read until the sentinel comes: both the local
provider and the Pub/Sub emulator hand a subscription's messages out in the order they were
published, so everything published before the sentinel is read before it. Use it once the
publishes under test have returned (a publish still in flight may land after the sentinel)."""

from __future__ import annotations

import time
import uuid

from workloads.providers.base import OutboundMessage, Queue, QueueSpec, ReceivedMessage

# Marks the sentinel; no product code reads or writes this attribute.
SENTINEL_ATTRIBUTE = "test-sentinel"


def is_sentinel(message: ReceivedMessage) -> bool:
    return SENTINEL_ATTRIBUTE in message.attributes


def before_a_sentinel(queue: Queue, spec: QueueSpec, *, ack: bool = False, timeout: float = 30.0):
    """Every message the subscription delivers before a sentinel published now. Sentinels are
    acked; the others too when `ack`, otherwise their leases are left to run."""
    # Its own sentinel ends the read: an earlier one that a seek brought back is skipped.
    mine = uuid.uuid4().hex
    queue.publish(spec, [OutboundMessage(b"sentinel", {SENTINEL_ATTRIBUTE: mine})])
    found: list[ReceivedMessage] = []
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"the sentinel never came; before it: {found}"
        batch = queue.pull(spec, max_messages=100, timeout=1.0)
        others = [m for m in batch if not is_sentinel(m)]
        settled = batch if ack else [m for m in batch if is_sentinel(m)]
        if settled:
            queue.ack(spec, [m.ack_id for m in settled])
        found += others
        if any(m.attributes.get(SENTINEL_ATTRIBUTE) == mine for m in batch):
            return found
