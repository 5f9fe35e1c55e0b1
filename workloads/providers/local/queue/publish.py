"""Publishing: batches (`publish`) and replays (`republish`): a message row and one delivery row per
subscription of the topic."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from django.db import connections, transaction

from workloads.fastsql import insert_rows
from workloads.providers.base import OutboundMessage, QueueSpec
from workloads.providers.local.models import LocalDelivery, LocalMessage, LocalSubscription, LocalTopic
from workloads.providers.local.names import not_found
from workloads.providers.local.queue.common import PUBLISH_BATCH, TOPIC_HINT, check_outbound


class PublishingMixin:
    using: str
    _now: Callable[[], datetime]

    def _topic_with_subscriptions(self, name: str) -> tuple[LocalTopic, list[int]]:
        """The topic and its subscriptions' ids in one query (publishing is the hot path, so plain
        SQL: the ORM's query building costs more than the query)."""
        quote = connections[self.using].ops.quote_name
        topics, subscriptions = quote(LocalTopic._meta.db_table), quote(LocalSubscription._meta.db_table)
        topic_id, subscription_id = quote(LocalTopic._meta.pk.column), quote(LocalSubscription._meta.pk.column)
        subscription_topic = quote(LocalSubscription._meta.get_field("topic").column)
        with connections[self.using].cursor() as cursor:
            cursor.execute(
                f"SELECT t.{topic_id}, s.{subscription_id} FROM {topics} t LEFT JOIN {subscriptions} s "
                f"ON s.{subscription_topic} = t.{topic_id} WHERE t.{quote('name')} = %s",
                [name],
            )
            rows = cursor.fetchall()
        if not rows:
            raise not_found("topic", name, TOPIC_HINT)
        topic = LocalTopic(pk=rows[0][0], name=name)
        return topic, [subscription for _pk, subscription in rows if subscription is not None]

    publish_joins_transaction = True  # rows in the caller's database: no network call to wait for

    def publish(
        self,
        spec: QueueSpec,
        messages: Sequence[OutboundMessage],
        *,
        topic: str = "",
        deadline: float | None = None,
        on_published: Callable[[int, str], None] | None = None,
    ) -> list[str]:
        name = topic or spec.topic
        ids: list[str] = []
        topic, subscriptions = self._topic_with_subscriptions(name)
        for message in messages:
            check_outbound(message, name)
        for start in range(0, max(1, len(messages)), PUBLISH_BATCH):
            # Checked above, so only a database error can fail in here, and that fails the caller's
            # transaction anyway: no savepoint (ingestion claims its keys and publishes in one).
            with transaction.atomic(using=self.using, savepoint=False):
                ids += self._insert(
                    topic, messages[start : start + PUBLISH_BATCH], self._now(), subscriptions=subscriptions
                )
        if on_published is not None:
            # All or nothing: the rows commit with the caller's transaction (or each batch's own).
            for index, message_id in enumerate(ids):
                on_published(index, message_id)
        return ids

    def _insert(
        self,
        topic: LocalTopic,
        messages: Sequence[OutboundMessage],
        now: datetime,
        *,
        subscriptions: list[int] | None = None,
    ) -> list[str]:
        """Write messages and one delivery per subscription of the topic (call inside a transaction).
        A topic without subscriptions drops its messages, as Pub/Sub does; prune removes the rows."""
        if not messages:
            return []
        for message in messages:
            check_outbound(message, topic.name)
        if subscriptions is None:
            subscriptions = list(
                LocalSubscription.objects.using(self.using).filter(topic=topic).values_list("pk", flat=True)
            )
        message_ids = [
            message_id
            for (message_id,) in insert_rows(
                LocalMessage,
                ("topic", "data", "attributes", "ordering_key", "published_at"),
                [(topic.pk, bytes(m.data), dict(m.attributes), m.ordering_key, now) for m in messages],
                using=self.using,
                returning=("id",),
            )
        ]
        insert_rows(
            LocalDelivery,
            ("subscription", "message", "ordering_key", "published_at", "attempts", "visible_at")
            + ("lease_token", "acked_at", "dead_lettered"),
            [
                (subscription, message_id, message.ordering_key, now, 0, now, "", None, False)
                for message_id, message in zip(message_ids, messages, strict=True)
                for subscription in subscriptions
            ],
            using=self.using,
        )
        return [str(message_id) for message_id in message_ids]

    def republish(
        self,
        spec: QueueSpec,
        messages: Sequence[OutboundMessage],
        *,
        velocity: float | None = None,
        on_published: Callable[[int, str], None] | None = None,
    ) -> list[str]:
        if velocity is not None and velocity <= 0:
            raise ValueError("velocity must be positive (messages per second) or None for no cap")
        ids: list[str] = []
        started = time.monotonic()
        # One message per transaction, so progress reported through on_published is never ahead
        # of what was committed (a crash mid-way loses nothing and duplicates nothing reported).
        for index, message in enumerate(messages):
            if velocity:
                delay = started + index / velocity - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            with transaction.atomic(using=self.using):
                [message_id] = self._insert(self._topic(spec.topic), [message], self._now())
            ids.append(message_id)
            if on_published is not None:
                on_published(index, message_id)
        return ids

    # --- leasing and settling ----------------------------------------------------------------------
