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
"""

from __future__ import annotations

import logging
import queue as queue_module
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from workloads.batch_delete import DEFAULT_BATCH_SIZE, delete_in_batches
from workloads.fastinsert import insert_rows
from workloads.models import (
    LocalDelivery,
    LocalMessage,
    LocalSnapshot,
    LocalSnapshotMessage,
    LocalSubscription,
    LocalTopic,
)
from workloads.providers.base import (
    DEAD_LETTER_DELIVERY_COUNT,
    DEAD_LETTER_PUBLISH_TIME,
    DEAD_LETTER_RETENTION_SECONDS,
    DEAD_LETTER_SOURCE_PROJECT,
    DEAD_LETTER_SOURCE_SUBSCRIPTION,
    Disposition,
    EnsureResult,
    GuardRows,
    MessageHandler,
    OutboundMessage,
    Outcome,
    ProviderError,
    Queue,
    QueueSpec,
    ReceivedMessage,
    ResourceDrift,
    SnapshotInfo,
    retry_backoff_seconds,
)
from workloads.providers.limits import message_problems
from workloads.providers.local.names import invalid, not_found, project_id, short_id, snapshot_name

logger = logging.getLogger(__name__)

SNAPSHOT_LIFETIME = timedelta(days=7)  # Pub/Sub's: at most 7 days after the oldest unacked message
DEAD_LETTER_ACK_DEADLINE_SECONDS = 60  # how long a peeked dead letter stays hidden from other peeks
MAX_NACK_DELAY_SECONDS = 600.0
IDLE_POLL_MIN, IDLE_POLL_MAX = 0.2, 1.0  # consume(): back off while nothing is available
PUBLISH_BATCH = 500

_TOPIC_HINT = "ensure the class's queue resources first (Queue.ensure_resources)."
_SUBSCRIPTION_HINT = "ensure the class's queue resources first (Queue.ensure_resources)."


def rfc3339(moment: datetime) -> str:
    """UTC with milliseconds and a trailing Z, as Pub/Sub writes publish times in attributes."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _subscription_settings(spec: QueueSpec, topic: LocalTopic, dead_letter_topic: LocalTopic) -> dict[str, tuple]:
    """Drift setting name -> (model field, wanted value) for the class's work subscription."""
    return {
        "topic": ("topic", topic),
        "ack_deadline_seconds": ("ack_deadline_seconds", spec.ack_deadline_seconds),
        "dead_letter_policy.dead_letter_topic": ("dead_letter_topic", dead_letter_topic),
        "dead_letter_policy.max_delivery_attempts": ("max_delivery_attempts", spec.max_delivery_attempts),
        "retry_policy.minimum_backoff": ("min_backoff_seconds", spec.min_backoff_seconds),
        "retry_policy.maximum_backoff": ("max_backoff_seconds", spec.max_backoff_seconds),
        "enable_message_ordering": ("ordering", spec.ordering),
        "message_retention_duration": ("retention_seconds", spec.message_retention_seconds),
    }


# Pub/Sub cannot change ordering on an existing subscription; the local queue keeps the same rule
# so a class behaves the same on both (the drift stays reported: recreate the subscription).
_IMMUTABLE_SETTINGS = frozenset({"enable_message_ordering"})


def _drift_value(value):
    return value.name if isinstance(value, LocalTopic) else value


class LocalQueue(Queue):
    def __init__(self, *, using: str = "default", now: Callable[[], datetime] = timezone.now):
        self.using = using
        self._now = now

    # --- resources ---------------------------------------------------------------------------------
    def ensure_resources(self, spec: QueueSpec, *, apply: bool = False) -> EnsureResult:
        result = EnsureResult()
        now = self._now()
        with transaction.atomic(using=self.using):
            topic = self._ensure_topic(spec.topic, now, result)
            dead_letter_topic = self._ensure_topic(spec.dead_letter_topic, now, result)
            # Without a subscription on the dead-letter topic, dead letters would be dropped.
            self._ensure_subscription(
                spec.dead_letter_subscription,
                {
                    "topic": ("topic", dead_letter_topic),
                    "ack_deadline_seconds": ("ack_deadline_seconds", DEAD_LETTER_ACK_DEADLINE_SECONDS),
                    "message_retention_duration": ("retention_seconds", DEAD_LETTER_RETENTION_SECONDS),
                },
                now=now,
                result=result,
                apply=apply,
                checked={"topic", "message_retention_duration"},
            )
            self._ensure_subscription(
                spec.subscription,
                _subscription_settings(spec, topic, dead_letter_topic),
                now=now,
                result=result,
                apply=apply,
            )
            if spec.completion_topic:
                self._ensure_topic(spec.completion_topic, now, result)
        return result

    def _ensure_topic(self, name: str, now: datetime, result: EnsureResult) -> LocalTopic:
        topic, created = LocalTopic.objects.using(self.using).get_or_create(name=name, defaults={"created_at": now})
        if created:
            result.created.append(name)
        return topic

    def _ensure_subscription(
        self,
        name: str,
        settings: dict[str, tuple],
        *,
        now: datetime,
        result: EnsureResult,
        apply: bool,
        checked: set[str] | None = None,
    ) -> None:
        fields = {field: value for field, value in settings.values()}
        subscription, created = LocalSubscription.objects.using(self.using).get_or_create(
            name=name, defaults={**fields, "created_at": now, "updated_at": now}
        )
        if created:
            result.created.append(name)
            return
        changed = []
        for setting, (field, wanted) in settings.items():
            if checked is not None and setting not in checked:
                continue
            actual = getattr(subscription, field)
            if actual == wanted:
                continue
            result.drift.append(ResourceDrift(name, setting, _drift_value(wanted), _drift_value(actual)))
            if apply and setting not in _IMMUTABLE_SETTINGS:
                setattr(subscription, field, wanted)
                changed.append(field)
        if changed:
            subscription.updated_at = now
            subscription.save(using=self.using, update_fields=[*changed, "updated_at"])
            result.updated.append(name)

    def _topic(self, name: str) -> LocalTopic:
        try:
            return LocalTopic.objects.using(self.using).get(name=name)
        except LocalTopic.DoesNotExist:
            raise not_found("topic", name, _TOPIC_HINT) from None

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
            raise not_found("topic", name, _TOPIC_HINT)
        topic = LocalTopic(pk=rows[0][0], name=name)
        return topic, [subscription for _pk, subscription in rows if subscription is not None]

    def _subscription(self, name: str) -> LocalSubscription:
        try:
            return LocalSubscription.objects.using(self.using).get(name=name)
        except LocalSubscription.DoesNotExist:
            raise not_found("subscription", name, _SUBSCRIPTION_HINT) from None

    # --- publishing ---------------------------------------------------------------------------------
    publish_joins_transaction = True  # rows in the caller's database: no network call to wait for

    def publish(
        self, spec: QueueSpec, messages: Sequence[OutboundMessage], *, topic: str = "", deadline: float | None = None
    ) -> list[str]:
        name = topic or spec.topic
        ids: list[str] = []
        topic, subscriptions = self._topic_with_subscriptions(name)
        for message in messages:
            _check_outbound(message, name)
        for start in range(0, max(1, len(messages)), PUBLISH_BATCH):
            # Checked above, so only a database error can fail in here, and that fails the caller's
            # transaction anyway: no savepoint (ingestion claims its keys and publishes in one).
            with transaction.atomic(using=self.using, savepoint=False):
                ids += self._insert(
                    topic, messages[start : start + PUBLISH_BATCH], self._now(), subscriptions=subscriptions
                )
        return ids

    @property
    def supports_guarded_publish(self) -> bool:
        # One statement with data-modifying CTEs: PostgreSQL only, and the guard's table is in the
        # application's database, so the queue has to live there too.
        return self.using == DEFAULT_DB_ALIAS and connections[self.using].vendor == "postgresql"

    def publish_guarded(
        self, spec: QueueSpec, messages: Sequence[OutboundMessage], guards: GuardRows
    ) -> list[str | None]:
        """The guard rows, the messages whose rows went in and their deliveries in one statement
        (ingestion's hot path: one round trip where a transaction takes seven). Message ids are
        drawn from the message table's sequence first, in input order, so each guard row can carry
        its message's id; an id whose row conflicted is simply skipped."""
        if not self.supports_guarded_publish:
            return super().publish_guarded(spec, messages, guards)
        if len(guards.rows) != len(messages):
            raise ValueError(f"{len(messages)} messages but {len(guards.rows)} guard rows")
        if not messages:
            return []
        for message in messages:
            _check_outbound(message, spec.topic)
        connection = connections[self.using]
        message_values = [
            _prepared(LocalMessage, connection, data=bytes(m.data), attributes=dict(m.attributes)) for m in messages
        ]
        [published_at] = _prepared(LocalMessage, connection, published_at=self._now()).values()
        params = [
            spec.topic,
            LocalMessage._meta.db_table,
            LocalMessage._meta.pk.column,
            *(list(column) for column in zip(*guards.rows, strict=True)),  # one array per guard column
            [values["data"] for values in message_values],
            [values["attributes"] for values in message_values],
            [m.ordering_key for m in messages],
            published_at,  # the messages'
            published_at,  # the deliveries'
            published_at,  # visible from
        ]
        sql = _guarded_publish_sql(self.using, guards.table, guards.columns, guards.message_id_column)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            [(message_ids,)] = cursor.fetchall()
        if message_ids is None:  # no topic, so nothing numbered and nothing written
            raise not_found("topic", spec.topic, _TOPIC_HINT)
        return [None if message_id is None else str(message_id) for message_id in message_ids]

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
            _check_outbound(message, topic.name)
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
        for token, pks in _parse_ack_ids(ack_ids).items():
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
        leases = _parse_ack_ids(ack_ids)
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
    def consume(
        self,
        spec: QueueSpec,
        handler: MessageHandler,
        *,
        max_concurrency: int,
        stop: threading.Event,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        consumer = _Consumer(self, spec.subscription, handler, max_concurrency, stop)  # NOT_FOUND raises here
        try:
            consumer.run()
        finally:
            # The caller's thread may end right after (runworker, tests): do not leave its
            # connection open, unless it is inside a transaction it still needs.
            connection = connections[self.using]
            if not connection.in_atomic_block:
                connection.close()

    # --- seek and snapshots ---------------------------------------------------------------------------
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

    def topic_subscriptions(self, spec: QueueSpec) -> list[str]:
        subscriptions = LocalSubscription.objects.using(self.using).filter(topic__name=spec.topic)
        return list(subscriptions.order_by("name").values_list("name", flat=True))

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


def _prepared(model, connection, **values) -> dict:
    """Values adapted by their fields, exactly as the ORM would send them."""
    return {name: model._meta.get_field(name).get_db_prep_save(value, connection) for name, value in values.items()}


@cache
def _guarded_publish_sql(using: str, guard_table: str, guard_columns: tuple, message_id_column: str) -> str:
    """publish_guarded's statement, built once per guard shape. Every data-modifying CTE runs once
    and to completion, in one snapshot: a message is inserted only when its guard row was, and
    deliveries only for those messages, one per subscription of the topic. The answer is one row:
    the message ids in input order (NULL where the guard conflicted), or NULL for the whole array
    when the topic does not exist (then nothing was numbered, and nothing written)."""
    connection = connections[using]
    quote = connection.ops.quote_name

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    def array_type(model, name):
        return model._meta.get_field(name).cast_db_type(connection) + "[]"

    guard_aliases = [f"guard_{index}" for index in range(len(guard_columns))]
    arrays = [f"%s::{sql_type}[]" for _name, sql_type in guard_columns]
    arrays += [f"%s::{array_type(LocalMessage, name)}" for name in ("data", "attributes", "ordering_key")]
    at = "%s::" + LocalMessage._meta.get_field("published_at").cast_db_type(connection)
    topic_id, subscription_topic = column(LocalTopic, "id"), column(LocalSubscription, "topic")
    return f"""
        WITH topic AS (
            SELECT {topic_id} AS id FROM {quote(LocalTopic._meta.db_table)} WHERE {column(LocalTopic, "name")} = %s
        ), numbered AS MATERIALIZED (
            SELECT nextval(pg_get_serial_sequence(%s, %s)) AS message_id, input.*
            FROM topic, unnest({", ".join(arrays)})
                WITH ORDINALITY AS input({", ".join(guard_aliases)}, data, attributes, ordering_key, position)
            ORDER BY input.position
        ), guard (message_id) AS (
            INSERT INTO {quote(guard_table)} ({", ".join(quote(name) for name, _type in guard_columns)},
                                              {quote(message_id_column)})
            SELECT {", ".join(guard_aliases)}, message_id::text FROM numbered ORDER BY {", ".join(guard_aliases)}
            ON CONFLICT DO NOTHING RETURNING {quote(message_id_column)}
        ), message AS (
            INSERT INTO {quote(LocalMessage._meta.db_table)}
                ({column(LocalMessage, "id")}, {column(LocalMessage, "topic")}, {column(LocalMessage, "data")},
                 {column(LocalMessage, "attributes")}, {column(LocalMessage, "ordering_key")},
                 {column(LocalMessage, "published_at")})
            SELECT numbered.message_id, topic.id, numbered.data, numbered.attributes, numbered.ordering_key, {at}
            FROM numbered JOIN guard ON guard.message_id = numbered.message_id::text CROSS JOIN topic
            ORDER BY numbered.message_id
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
            WHERE s.{subscription_topic} = (SELECT id FROM topic)
            ORDER BY message.id
        )
        SELECT array_agg(message.id ORDER BY numbered.position)
        FROM numbered LEFT JOIN message ON message.id = numbered.message_id
    """


def _check_outbound(message: OutboundMessage, topic: str) -> None:
    if not isinstance(message.data, bytes | bytearray | memoryview):
        raise invalid(f"Message data for {topic} must be bytes, got {type(message.data).__name__}.", topic)
    for key, value in message.attributes.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise invalid(f"Message attributes for {topic} must map non-empty strings to strings: {key!r}.", topic)
    problems = message_problems(message)  # what real Pub/Sub would refuse, refused here too
    if problems:
        raise invalid(f"Cannot publish to {topic}: {' '.join(problems)}", topic)


def _parse_ack_ids(ack_ids: Iterable[str]) -> dict[str, list[int]]:
    """`<delivery id>:<lease token>` ack ids grouped by token (one lease batch shares a token)."""
    leases: dict[str, list[int]] = defaultdict(list)
    for ack_id in ack_ids:
        pk, _, token = str(ack_id).partition(":")
        if not pk.isdigit() or not token:
            raise invalid(f"{ack_id!r} is not an ack id of the local queue.")
        leases[token].append(int(pk))
    return dict(leases)


class _Consumer:
    """consume(): one thread leases as many messages as there are free handler slots and keeps
    the leases of running handlers alive; `max_concurrency` threads run the handler and settle."""

    def __init__(
        self,
        queue: LocalQueue,
        subscription: str,
        handler: MessageHandler,
        max_concurrency: int,
        stop: threading.Event,
    ):
        self.queue = queue
        self.subscription_name = subscription
        self.subscription = queue._subscription(subscription)
        self.handler = handler
        self.slots = max_concurrency
        self.stop = stop
        self.lock = threading.Lock()
        self.in_flight: dict[int, str] = {}  # delivery pk -> lease token, from lease until settled
        self.work: queue_module.SimpleQueue[ReceivedMessage | None] = queue_module.SimpleQueue()
        self.wake = threading.Event()  # a handler finished: a slot is free, an ordering key unblocked
        self.next_heartbeat = 0.0

    def run(self) -> None:
        workers = [
            threading.Thread(target=self._work, name=f"consume-{short_id(self.subscription_name)}-{i}", daemon=True)
            for i in range(self.slots)
        ]
        for worker in workers:
            worker.start()
        idle = IDLE_POLL_MIN
        try:
            self._schedule_heartbeat()
            while not self.stop.is_set():
                self._heartbeat_if_due()
                with self.lock:
                    free = self.slots - len(self.in_flight)
                if free <= 0:
                    self._pause(IDLE_POLL_MIN)
                    continue
                try:
                    self.subscription = self.queue._subscription(self.subscription_name)
                    received = self.queue._lease(self.subscription, free)
                except DatabaseError:
                    logger.exception("Leasing from %s failed; retrying", self.subscription_name)
                    _reconnect_later(self.queue.using)
                    received = []
                if received:
                    with self.lock:
                        for message in received:
                            self.in_flight[_delivery_pk(message)] = _lease_token(message)
                    for message in received:
                        self.work.put(message)
                    idle = IDLE_POLL_MIN
                    continue
                self._pause(idle)
                idle = min(idle * 2, IDLE_POLL_MAX)
        finally:
            self._shut_down(workers)

    def _shut_down(self, workers: list[threading.Thread]) -> None:
        unstarted = []
        while True:
            try:
                message = self.work.get_nowait()
            except queue_module.Empty:
                break
            if message is not None:
                unstarted.append(message)
        if unstarted:
            with self.lock:
                for message in unstarted:
                    self.in_flight.pop(_delivery_pk(message), None)
            self._safely(self.queue._release, _leases(unstarted))
        for _ in workers:
            self.work.put(None)
        # In-flight handlers finish; their leases must stay alive meanwhile.
        while any(worker.is_alive() for worker in workers):
            self._heartbeat_if_due()
            for worker in workers:
                worker.join(timeout=0.1)

    def _work(self) -> None:
        try:
            while True:
                message = self.work.get()
                if message is None:
                    return
                try:
                    self._handle(message)
                finally:
                    # Even if the handler killed this thread: stop extending its lease, so the
                    # message comes back once the lease runs out.
                    with self.lock:
                        self.in_flight.pop(_delivery_pk(message), None)
                    self.wake.set()
        finally:
            connections.close_all()  # this thread's connections only: it ends here

    def _handle(self, message: ReceivedMessage) -> None:
        try:
            disposition = self.handler(message)
            if not isinstance(disposition, Disposition):
                raise TypeError(f"the handler returned {disposition!r}, not a Disposition")
        except Exception:
            logger.exception("Handler failed on message %s; nacking it", message.message_id)
            disposition = Disposition.nack()
        try:
            if disposition.outcome is Outcome.ACK:
                self.queue._ack(self.subscription, [message.ack_id])
            else:
                self.queue._nack(self.subscription, [message.ack_id], delay_seconds=disposition.delay_seconds)
        except (DatabaseError, ProviderError):
            # The lease expires and the message comes back: at-least-once, as promised.
            logger.exception("Settling message %s failed", message.message_id)
            _reconnect_later(self.queue.using)

    def _pause(self, seconds: float) -> None:
        """Wait up to `seconds`, returning early when a handler finishes; `stop` is seen in 0.1 s."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.wake.wait(min(remaining, 0.1)):
                self.wake.clear()
                return

    def _schedule_heartbeat(self) -> None:
        # Extend at a third of the deadline, so two missed beats still leave the lease alive.
        self.next_heartbeat = time.monotonic() + max(0.5, self.subscription.ack_deadline_seconds / 3)

    def _heartbeat_if_due(self) -> None:
        if time.monotonic() < self.next_heartbeat:
            return
        self._schedule_heartbeat()
        with self.lock:
            leases: dict[str, list[int]] = defaultdict(list)
            for pk, token in self.in_flight.items():
                leases[token].append(pk)
        if leases:
            self._safely(self.queue._extend, self.subscription, leases)

    def _safely(self, function, *args) -> None:
        try:
            function(*args)
        except DatabaseError:
            logger.exception("%s on %s failed", function.__name__, self.subscription_name)
            _reconnect_later(self.queue.using)


def _reconnect_later(using: str) -> None:
    """After a database error, drop this thread's connection (it may be broken: a restarted
    server, a network cut) so the next call opens a fresh one."""
    connection = connections[using]
    if not connection.in_atomic_block:
        connection.close()


def _delivery_pk(message: ReceivedMessage) -> int:
    return int(message.ack_id.partition(":")[0])


def _lease_token(message: ReceivedMessage) -> str:
    return message.ack_id.partition(":")[2]


def _leases(messages: Iterable[ReceivedMessage]) -> dict[str, list[int]]:
    return _parse_ack_ids(m.ack_id for m in messages)


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
