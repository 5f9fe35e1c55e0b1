"""Seek (to a time or a snapshot) and snapshots, with Pub/Sub's rules: a snapshot keeps the
messages unacked when it was taken and everything published after, for at most 7 days."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from workloads.providers.base import ProviderError, QueueSpec, SnapshotInfo
from workloads.providers.local.models import LocalDelivery, LocalSnapshot, LocalSnapshotMessage
from workloads.providers.local.names import invalid, not_found, snapshot_name
from workloads.providers.local.queue.common import PUBLISH_BATCH

SNAPSHOT_LIFETIME = timedelta(days=7)  # Pub/Sub's: at most 7 days after the oldest unacked message


class SnapshotsMixin:
    using: str
    _now: Callable[[], datetime]

    def seek(self, spec: QueueSpec, *, to_time: datetime | None = None, to_snapshot: str | None = None) -> None:
        if (to_time is None) == (to_snapshot is None):
            raise ValueError("seek needs exactly one of to_time or to_snapshot")
        subscription = self._subscription(spec.subscription)
        now = self._now()
        with transaction.atomic(using=self.using):
            if to_time is not None:
                if timezone.is_naive(to_time):
                    raise invalid("seek to_time must be timezone-aware", spec.subscription)
                redeliver = Q(published_at__gt=to_time)
            else:
                snapshot = self._snapshot(spec.subscription, to_snapshot, now)
                if snapshot.topic_id != subscription.topic_id:
                    raise invalid(
                        f"Snapshot {snapshot.name} was taken on another topic than {spec.subscription}'s: "
                        "seek to a snapshot of the same topic.",
                        spec.subscription,
                    )
                in_snapshot = Exists(
                    LocalSnapshotMessage.objects.filter(snapshot=snapshot, message_id=OuterRef("message_id"))
                )
                redeliver = Q(published_at__gt=snapshot.created_at) | Q(in_snapshot)
            deliveries = LocalDelivery.objects.using(self.using).filter(subscription=subscription)
            deliveries.filter(redeliver, acked_at__isnull=False).update(
                acked_at=None, dead_lettered=False, attempts=0, lease_token="", visible_at=now
            )
            deliveries.filter(redeliver, acked_at__isnull=True).update(lease_token="", visible_at=now)
            deliveries.filter(~redeliver, acked_at__isnull=True).update(acked_at=now, lease_token="")

    def _snapshot(self, subscription: str, name: str, now: datetime) -> LocalSnapshot:
        full = snapshot_name(subscription, name)
        snapshot = LocalSnapshot.objects.using(self.using).filter(name=full, expire_time__gt=now).first()
        if snapshot is None:
            raise not_found("snapshot", full, "create it with Queue.create_snapshot (snapshots expire after 7 days).")
        return snapshot

    def list_snapshots(self, spec: QueueSpec) -> list[SnapshotInfo]:
        subscription = self._subscription(spec.subscription)
        snapshots = LocalSnapshot.objects.using(self.using).filter(
            topic_id=subscription.topic_id, expire_time__gt=self._now()
        )
        return [SnapshotInfo(name=s.name, expire_time=s.expire_time) for s in snapshots.order_by("name")]

    def create_snapshot(self, spec: QueueSpec, name: str) -> SnapshotInfo:
        subscription = self._subscription(spec.subscription)
        full = snapshot_name(spec.subscription, name)
        now = self._now()
        with transaction.atomic(using=self.using):
            snapshots = LocalSnapshot.objects.using(self.using)
            snapshots.filter(name=full, expire_time__lte=now).delete()
            if snapshots.filter(name=full).exists():
                raise ProviderError(
                    f"The snapshot {full} already exists: pick another name or delete it first.",
                    permanent=True,
                    code="ALREADY_EXISTS",
                    resource=full,
                )
            unacked = list(
                LocalDelivery.objects.using(self.using)
                .filter(subscription=subscription, acked_at__isnull=True)
                .values_list("message_id", "published_at")
            )
            oldest = min((published for _, published in unacked), default=now)
            snapshot = snapshots.create(
                name=full,
                subscription=subscription,
                topic_id=subscription.topic_id,
                created_at=now,
                expire_time=oldest + SNAPSHOT_LIFETIME,
            )
            LocalSnapshotMessage.objects.using(self.using).bulk_create(
                [LocalSnapshotMessage(snapshot=snapshot, message_id=message_id) for message_id, _ in unacked],
                batch_size=PUBLISH_BATCH,
            )
        return SnapshotInfo(name=full, expire_time=snapshot.expire_time)
