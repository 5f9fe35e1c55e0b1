"""Retention of the queue's own tables (the metric history's: providers/local/prune.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef
from django.utils import timezone

from workloads.batch_delete import DEFAULT_BATCH_SIZE, delete_in_batches
from workloads.providers.local.models import (
    LocalDelivery,
    LocalMessage,
    LocalSnapshot,
    LocalSnapshotMessage,
    LocalSubscription,
)


def local_queue_prune(
    *, using: str = "default", now: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict[str, int]:
    """Delete what Pub/Sub would have let go: deliveries (acked or not) published longer ago than
    their subscription's retention, expired snapshots, and messages no subscription or snapshot
    refers to any more. Messages a live snapshot holds are kept for it. Safe to run at any time,
    from any process (rows go in small batches, each in its own transaction, so publishers and
    consumers are never blocked for long); returns how many rows of each kind went."""
    now = now or timezone.now()
    counts = {"deliveries": 0, "snapshots": 0, "messages": 0}
    counts["snapshots"] = delete_in_batches(
        LocalSnapshot.objects.using(using).filter(expire_time__lte=now), batch_size=batch_size
    )
    held = LocalSnapshotMessage.objects.filter(message_id=OuterRef("message_id"))
    retentions = set(LocalSubscription.objects.using(using).values_list("retention_seconds", flat=True))
    for retention in sorted(retentions):
        expired = LocalDelivery.objects.using(using).filter(
            subscription__retention_seconds=retention, published_at__lt=now - timedelta(seconds=retention)
        )
        counts["deliveries"] += delete_in_batches(expired.exclude(Exists(held)), batch_size=batch_size)
    orphans = LocalMessage.objects.using(using).exclude(Exists(LocalDelivery.objects.filter(message_id=OuterRef("pk"))))
    counts["messages"] = delete_in_batches(
        orphans.exclude(Exists(LocalSnapshotMessage.objects.filter(message_id=OuterRef("pk")))), batch_size=batch_size
    )
    return counts
