"""Publishing: batches (`publish`) and replays (`republish`): a message row and one delivery row per
subscription of the topic."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import cache

from django.db import connections, transaction

from workloads.fastsql.writes import insert_rows
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
        for message in messages:
            check_outbound(message, name)
        # Inside the caller's transaction nothing is published before it commits: all or nothing,
        # reported at the end. Outside one each batch commits on its own, so it is reported as it
        # does: a batch that fails later must not hide the ones already out.
        reports_each_batch = on_published is not None and not connections[self.using].in_atomic_block
        ids: list[str] = []
        for batch_ids in self._published_batches(name, messages):
            if reports_each_batch:
                for index, message_id in enumerate(batch_ids, start=len(ids)):
                    on_published(index, message_id)
            ids += batch_ids
        if on_published is not None and not reports_each_batch:
            for index, message_id in enumerate(ids):
                on_published(index, message_id)
        return ids

    def _published_batches(self, name: str, messages: Sequence[OutboundMessage]) -> Iterator[list[str]]:
        """Each batch's message ids once its rows are written (committed, outside a transaction)."""
        if messages and connections[self.using].vendor == "postgresql":
            for start in range(0, len(messages), PUBLISH_BATCH):
                yield self._insert_in_one_statement(name, messages[start : start + PUBLISH_BATCH])
            return
        topic, subscriptions = self._topic_with_subscriptions(name)
        for start in range(0, max(1, len(messages)), PUBLISH_BATCH):
            # Checked above, so only a database error can fail in here, and that fails the caller's
            # transaction anyway: no savepoint (ingestion claims its keys and publishes in one).
            with transaction.atomic(using=self.using, savepoint=False):
                batch_ids = self._insert(
                    topic, messages[start : start + PUBLISH_BATCH], self._now(), subscriptions=subscriptions
                )
            yield batch_ids  # after the block: reported only once committed

    def _insert_in_one_statement(self, name: str, messages: Sequence[OutboundMessage]) -> list[str]:
        """PostgreSQL: the topic lookup, the messages and their deliveries in one statement (one
        round trip where the steps take three; ingestion publishes inside its claims' transaction)."""
        connection = connections[self.using]
        now = LocalMessage._meta.get_field("published_at").get_db_prep_save(self._now(), connection)
        params = [
            name,
            LocalMessage._meta.db_table,
            LocalMessage._meta.pk.column,
            _messages_json(messages),
            now,  # the messages'
            now,  # the deliveries'
            now,  # visible from
        ]
        with transaction.atomic(using=self.using, savepoint=False), connection.cursor() as cursor:
            cursor.execute(_publish_sql(self.using), params)
            [(message_ids,)] = cursor.fetchall()
        if message_ids is None:  # no topic, so nothing numbered and nothing written
            raise not_found("topic", name, TOPIC_HINT)
        return [str(message_id) for message_id in message_ids]

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


def _messages_json(messages: Sequence[OutboundMessage]) -> str:
    """The messages as one JSON parameter of `_publish_sql`: [data as hex, attributes, ordering key]
    each. One document written by `json.dumps` in C, where three arrays (bytea, jsonb, text) were
    adapted by the driver in Python, element by element (a JSON document per message's
    attributes). The attributes are text to text (check_outbound), so the jsonb stored is the one
    the field's own adaptation would store."""
    return json.dumps(
        [[bytes(m.data).hex(), dict(m.attributes), m.ordering_key] for m in messages], separators=(",", ":")
    )


@cache
def _publish_sql(using: str) -> str:
    """`_insert_in_one_statement`'s statement. Ids are drawn from the message table's sequence
    first, in input order (a MATERIALIZED CTE runs once, in its ORDER BY), so the answer lists them
    in input order; every data-modifying CTE runs once and to completion in one snapshot. A topic
    that does not exist numbers nothing, so the answer is NULL and nothing was written."""
    connection = connections[using]
    quote = connection.ops.quote_name

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    def cast(model, name, array=True):
        return model._meta.get_field(name).cast_db_type(connection) + ("[]" if array else "")

    at = "%s::" + cast(LocalMessage, "published_at", array=False)
    return f"""
        WITH topic AS (
            SELECT {column(LocalTopic, "id")} AS id FROM {quote(LocalTopic._meta.db_table)}
            WHERE {column(LocalTopic, "name")} = %s
        ), numbered AS MATERIALIZED (
            SELECT nextval(pg_get_serial_sequence(%s, %s)) AS message_id, topic.id AS topic_id, input.*
            FROM topic, LATERAL (
                SELECT decode(m.r->>0, 'hex') AS data, m.r->1 AS attributes,
                       (m.r->>2)::{cast(LocalMessage, "ordering_key", array=False)} AS ordering_key, m.position
                FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS m(r, position)
            ) AS input
            ORDER BY input.position
        ), message AS (
            INSERT INTO {quote(LocalMessage._meta.db_table)}
                ({column(LocalMessage, "id")}, {column(LocalMessage, "topic")}, {column(LocalMessage, "data")},
                 {column(LocalMessage, "attributes")}, {column(LocalMessage, "ordering_key")},
                 {column(LocalMessage, "published_at")})
            SELECT message_id, topic_id, data, attributes, ordering_key, {at} FROM numbered ORDER BY message_id
            RETURNING {column(LocalMessage, "id")} AS id, {column(LocalMessage, "ordering_key")} AS ordering_key
        ), delivery AS (
            INSERT INTO {quote(LocalDelivery._meta.db_table)}
                ({column(LocalDelivery, "subscription")}, {column(LocalDelivery, "message")},
                 {column(LocalDelivery, "ordering_key")}, {column(LocalDelivery, "published_at")},
                 {column(LocalDelivery, "visible_at")}, {column(LocalDelivery, "attempts")},
                 {column(LocalDelivery, "lease_token")}, {column(LocalDelivery, "acked_at")},
                 {column(LocalDelivery, "dead_lettered")})
            SELECT s.{column(LocalSubscription, "id")}, message.id, message.ordering_key, {at}, {at}, 0, '', NULL, false
            FROM {quote(LocalSubscription._meta.db_table)} s, message
            WHERE s.{column(LocalSubscription, "topic")} = (SELECT id FROM topic)
            ORDER BY message.id
        )
        SELECT array_agg(numbered.message_id ORDER BY numbered.position)
        FROM numbered JOIN message ON message.id = numbered.message_id
    """
