"""The Queue port on the control plane's own database, with Pub/Sub's semantics.

A topic fans out to its subscriptions: publishing writes one message row and one delivery row per
subscription. A delivery is leasable when it is unacked, its `visible_at` has passed and (with
ordering on) no earlier message of its ordering key is still unacked in that subscription. Leasing
counts a delivery attempt, sets a fresh lease token (the ack id is `<delivery id>:<token>`) and
hides the delivery for the ack deadline; an expired lease simply makes it leasable again, so it
counts as an attempt as on Pub/Sub. A delivery whose attempts reached the subscription's
`max_delivery_attempts` is not delivered again: a copy goes to the dead-letter topic with the
attributes Pub/Sub adds, and the delivery is marked acked.

Concurrency: on PostgreSQL leases take rows with `SELECT ... FOR UPDATE SKIP LOCKED` in short
transactions, so concurrent consumers never lease one delivery twice and never wait on each other.
SQLite has no row locks; the settings open every transaction with BEGIN IMMEDIATE, so lease
transactions run one at a time across threads and processes and stay just as exclusive.

Acked deliveries stay (with `acked_at`) until `local_queue_prune` removes them after the
subscription's retention, so `seek` can flip them back, and the metrics adapter can rebuild past
backlogs from publish and ack times.

One module per concern, each a mixin of `LocalQueue` (assembled here): resources.py (topics,
subscriptions, drift), publish.py (publish, republish), leases.py (pull, ack, nack,
leases, dead letters), consumer.py (the streaming consumer), snapshots.py (seek and snapshots),
prune.py (retention), common.py (what they share).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.utils import timezone

from workloads.providers.base import Queue, retry_backoff_seconds
from workloads.providers.local.queue.common import PUBLISH_BATCH, rfc3339
from workloads.providers.local.queue.consumer import ConsumingMixin
from workloads.providers.local.queue.leases import MAX_NACK_DELAY_SECONDS, LeasingMixin
from workloads.providers.local.queue.prune import local_queue_prune
from workloads.providers.local.queue.publish import PublishingMixin
from workloads.providers.local.queue.resources import DEAD_LETTER_ACK_DEADLINE_SECONDS, ResourcesMixin
from workloads.providers.local.queue.snapshots import SNAPSHOT_LIFETIME, SnapshotsMixin

__all__ = [
    "DEAD_LETTER_ACK_DEADLINE_SECONDS",
    "MAX_NACK_DELAY_SECONDS",
    "PUBLISH_BATCH",
    "SNAPSHOT_LIFETIME",
    "LocalQueue",
    "local_queue_prune",
    "retry_backoff_seconds",
    "rfc3339",
]


class LocalQueue(ResourcesMixin, PublishingMixin, LeasingMixin, ConsumingMixin, SnapshotsMixin, Queue):
    def __init__(self, *, using: str = "default", now: Callable[[], datetime] = timezone.now):
        self.using = using
        self._now = now
