"""Pulling, leasing, acking, nacking, extending and releasing leases, and moving deliveries that
ran out of attempts to the dead-letter topic."""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q

from workloads.providers.base import (
    DEAD_LETTER_DELIVERY_COUNT,
    DEAD_LETTER_PUBLISH_TIME,
    DEAD_LETTER_SOURCE_PROJECT,
    DEAD_LETTER_SOURCE_SUBSCRIPTION,
    OutboundMessage,
    QueueSpec,
    ReceivedMessage,
    retry_backoff_seconds,
)
from workloads.providers.local.models import LocalDelivery, LocalSubscription
from workloads.providers.local.names import project_id, short_id
from workloads.providers.local.queue.common import parse_ack_ids, rfc3339

logger = logging.getLogger(__name__)

MAX_NACK_DELAY_SECONDS = 600.0


class LeasingMixin:
    using: str
    _now: Callable[[], datetime]

    def pull(self, spec: QueueSpec, *, max_messages: int, timeout: float = 2.0) -> list[ReceivedMessage]:
        return self._pull(spec.subscription, max_messages=max_messages, timeout=timeout)

    def peek_dead_letters(self, spec: QueueSpec, *, max_messages: int) -> list[ReceivedMessage]:
        return self._pull(spec.dead_letter_subscription, max_messages=max_messages, timeout=0)

    def _pull(self, subscription: str, *, max_messages: int, timeout: float) -> list[ReceivedMessage]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        deadline = time.monotonic() + timeout
        pause = 0.05
        while True:
            received = self._lease(self._subscription(subscription), max_messages)
            remaining = deadline - time.monotonic()
            if received or remaining <= 0:
                return received
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.5)

    def _lease(self, subscription: LocalSubscription, max_messages: int) -> list[ReceivedMessage]:
        now = self._now()
        deliveries = LocalDelivery.objects.using(self.using)
        ready = deliveries.filter(subscription=subscription, acked_at__isnull=True, visible_at__lte=now)
        if subscription.ordering:
            earlier = LocalDelivery.objects.filter(
                subscription=subscription,
                ordering_key=OuterRef("ordering_key"),
                acked_at__isnull=True,
                message_id__lt=OuterRef("message_id"),
            )
            ready = ready.filter(Q(ordering_key="") | ~Exists(earlier))
        # A plain read first: idle polls then never take a lock (on SQLite, the database's
        # only write lock, which every worker process shares).
        if not ready.exists():
            return []
        with transaction.atomic(using=self.using):
            rows = list(
                ready.select_for_update(skip_locked=True)
                .order_by("message_id")
                .values_list("pk", "attempts")[:max_messages]
            )
            limit = subscription.max_delivery_attempts
            exhausted = [pk for pk, attempts in rows if limit and attempts >= limit]
            if exhausted:  # their last lease expired: move them instead of delivering again
                self._dead_letter(subscription, exhausted, now)
            live = [pk for pk, attempts in rows if not (limit and attempts >= limit)]
            if not live:
                return []
            token = uuid.uuid4().hex
            deliveries.filter(pk__in=live).update(
                attempts=F("attempts") + 1,
                lease_token=token,
                visible_at=now + timedelta(seconds=subscription.ack_deadline_seconds),
            )
            leased = list(deliveries.filter(pk__in=live).select_related("message").order_by("message_id"))
        return [
            ReceivedMessage(
                message_id=str(d.message_id),
                ack_id=f"{d.pk}:{token}",
                data=bytes(d.message.data),
                attributes=dict(d.message.attributes),
                ordering_key=d.ordering_key,
                delivery_attempt=d.attempts,
                publish_time=d.published_at,
            )
            for d in leased
        ]

    def _dead_letter(self, subscription: LocalSubscription, delivery_pks: list[int], now: datetime) -> None:
        """Publish copies to the dead-letter topic and retire the originals (inside a transaction)."""
        deliveries = list(
            LocalDelivery.objects.using(self.using)
            .filter(pk__in=delivery_pks)
            .select_related("message")
            .order_by("message_id")
        )
        if subscription.dead_letter_topic_id is not None:
            copies = [
                OutboundMessage(
                    data=bytes(d.message.data),
                    attributes={
                        **d.message.attributes,
                        DEAD_LETTER_DELIVERY_COUNT: str(d.attempts),
                        DEAD_LETTER_SOURCE_SUBSCRIPTION: short_id(subscription.name),
                        DEAD_LETTER_SOURCE_PROJECT: project_id(subscription.name),
                        DEAD_LETTER_PUBLISH_TIME: rfc3339(d.published_at),
                    },
                    ordering_key=d.ordering_key,
                )
                for d in deliveries
            ]
            self._insert(subscription.dead_letter_topic, copies, now)
        else:  # the dead-letter topic was deleted under the subscription: Pub/Sub would drop them too
            logger.warning("Dropping %d dead letters of %s: no dead-letter topic", len(deliveries), subscription)
        LocalDelivery.objects.using(self.using).filter(pk__in=delivery_pks).update(
            acked_at=now, dead_lettered=True, lease_token=""
        )

    def ack(self, spec: QueueSpec, ack_ids: Sequence[str]) -> None:
        self._ack(self._subscription(spec.subscription), ack_ids)

    def ack_dead_letters(self, spec: QueueSpec, ack_ids: Sequence[str]) -> None:
        self._ack(self._subscription(spec.dead_letter_subscription), ack_ids)

    def _ack(self, subscription: LocalSubscription, ack_ids: Iterable[str]) -> None:
        now = self._now()
        for token, pks in parse_ack_ids(ack_ids).items():
            # A stale ack id (the lease expired and someone else leased it since) matches nothing:
            # ignored silently, as Pub/Sub does without exactly-once delivery.
            LocalDelivery.objects.using(self.using).filter(
                subscription=subscription, pk__in=pks, lease_token=token, acked_at__isnull=True
            ).update(acked_at=now, lease_token="")

    def nack(self, spec: QueueSpec, ack_ids: Sequence[str], *, delay_seconds: float = 0.0) -> None:
        self._nack(self._subscription(spec.subscription), ack_ids, delay_seconds=delay_seconds)

    def _nack(self, subscription: LocalSubscription, ack_ids: Iterable[str], *, delay_seconds: float) -> None:
        """Release leases. A delay of 0 means "no explicit delay": the subscription's retry policy
        decides, as when a Pub/Sub client nacks; a positive delay is used as given (at most 600 s)."""
        leases = parse_ack_ids(ack_ids)
        if not leases:
            return
        delay = max(0.0, min(MAX_NACK_DELAY_SECONDS, float(delay_seconds)))
        now = self._now()
        deliveries = LocalDelivery.objects.using(self.using)
        lease_filter = Q()
        for token, pks in leases.items():
            lease_filter |= Q(pk__in=pks, lease_token=token)
        with transaction.atomic(using=self.using):
            rows = list(
                deliveries.filter(lease_filter, subscription=subscription, acked_at__isnull=True)
                .select_for_update()
                .values_list("pk", "attempts")
            )
            limit = subscription.max_delivery_attempts
            exhausted = [pk for pk, attempts in rows if limit and attempts >= limit]
            if exhausted:
                self._dead_letter(subscription, exhausted, now)
            by_visible_at: dict[datetime, list[int]] = defaultdict(list)
            for pk, attempts in rows:
                if limit and attempts >= limit:
                    continue
                wait = delay or retry_backoff_seconds(
                    attempts=attempts,
                    minimum=subscription.min_backoff_seconds,
                    maximum=subscription.max_backoff_seconds,
                )
                by_visible_at[now + timedelta(seconds=wait)].append(pk)
            for visible_at, pks in by_visible_at.items():
                deliveries.filter(pk__in=pks).update(visible_at=visible_at, lease_token="")

    def _extend(self, subscription: LocalSubscription, leases: dict[str, list[int]]) -> None:
        visible_at = self._now() + timedelta(seconds=subscription.ack_deadline_seconds)
        for token, pks in leases.items():
            LocalDelivery.objects.using(self.using).filter(pk__in=pks, lease_token=token, acked_at__isnull=True).update(
                visible_at=visible_at
            )

    def _release(self, leases: dict[str, list[int]]) -> None:
        """Give back leases no handler saw. The attempt they counted is taken back: the message was
        never delivered to anyone, and counting it would let worker restarts push a healthy message
        to the dead-letter queue. (Pub/Sub's client nacks them, which does count; we differ on
        purpose here.)"""
        now = self._now()
        for token, pks in leases.items():
            LocalDelivery.objects.using(self.using).filter(pk__in=pks, lease_token=token, acked_at__isnull=True).update(
                attempts=F("attempts") - 1, lease_token="", visible_at=now
            )

    # --- consuming --------------------------------------------------------------------------------
