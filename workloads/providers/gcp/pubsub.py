"""The Queue port on Google Cloud Pub/Sub (google-cloud-pubsub; honours PUBSUB_EMULATOR_HOST).

Decisions worth knowing:
- The class's backoff is applied once, by us, never by Pub/Sub: subscriptions have no retry policy
  (Pub/Sub would otherwise add its own backoff after the delay we already waited, and the
  emulator ignores the policy on the first nack anyway). A nack with a delay sets the ack
  deadline to the delay and drops the lease, so Pub/Sub redelivers after the delay (the library
  would otherwise keep extending the lease); a nack without one gets the class's retry policy
  (`retry_backoff_seconds`), as on the local provider. An existing subscription with a retry
  policy is reported as drift (expected 0 s/0 s) and cleared by apply.
- Per-key order through retries: a nacked message with an ordering key is retried in this
  process, holding its lease (and so its key) for the delay, because a nack would let the client
  library hand out the key's next message at once, before the retry. See `_deliver`.
- Message ordering cannot change after a subscription is created: a difference is reported as
  drift on every run, also with apply=True, until someone recreates the subscription.
- Consuming uses streaming pull with FlowControl(max_messages=max_concurrency) on a bounded thread
  pool.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import replace
from datetime import UTC, datetime

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

from workloads.providers.base import (
    DEAD_LETTER_RETENTION_SECONDS,
    Disposition,
    EnsureResult,
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
from workloads.providers.gcp.errors import (
    DEAD_LETTER_IAM_HINT,
    DEFAULT_BACKOFF,
    PUBSUB_ADMIN_ROLE,
    PUBSUB_PUBLISHER_ROLE,
    PUBSUB_SUBSCRIBER_ROLE,
    PUBSUB_VIEWER_ROLE,
    TRANSIENT_CODES,
    Backoff,
    call_with_retry,
    status_code,
    to_provider_error,
)
from workloads.providers.gcp.pubsub_deletion import PubSubDeletionMixin
from workloads.providers.limits import message_problems

logger = logging.getLogger(__name__)

ACK_IDS_PER_REQUEST = 1000  # the client library's own batch size for acks
DEAD_LETTER_ACK_DEADLINE = 60  # a peeked dead letter stays invisible this long unless acked
PEEK_TIMEOUT = 2.0  # seconds a dead-letter peek waits for messages
# The library takes attributes as keyword arguments next to these parameters, so an attribute with
# one of these names would be swallowed by the parameter instead of being sent.
RESERVED_ATTRIBUTES = frozenset({"topic", "data", "ordering_key", "retry", "timeout"})
# Fields of the work subscription compared against the spec, as ensure_resources reports them.
SETTINGS_MASK = {
    "ack_deadline_seconds": "ack_deadline_seconds",
    "dead_letter_policy.max_delivery_attempts": "dead_letter_policy",
    "dead_letter_policy.dead_letter_topic": "dead_letter_policy",
    "retry_policy.minimum_backoff": "retry_policy",
    "retry_policy.maximum_backoff": "retry_policy",
    "message_retention_duration": "message_retention_duration",
    "retain_acked_messages": "retain_acked_messages",
}


def _duration(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(seconds))


def _seconds(value) -> int:
    # proto-plus turns Duration fields into timedelta
    return int(value.total_seconds()) if value is not None else 0


def _label_drift(resource: str, actual, wanted: tuple[tuple[str, str], ...]) -> list[ResourceDrift]:
    """Our labels that are missing or different; labels someone else added are not drift."""
    return [
        ResourceDrift(resource=resource, setting=f"labels.{key}", expected=value, actual=actual.get(key))
        for key, value in wanted
        if actual.get(key) != value
    ]


def _mask_path(setting: str) -> str:
    """The update-mask path that fixes a drifted setting of the work subscription ("" if none can)."""
    return "labels" if setting.startswith("labels.") else SETTINGS_MASK.get(setting, "")


def _project(resource: str) -> str:
    return resource.split("/")[1]


class PubSubQueue(PubSubDeletionMixin, Queue):
    def __init__(
        self,
        *,
        publisher: pubsub_v1.PublisherClient,
        subscriber: pubsub_v1.SubscriberClient,
        ordered_publisher: pubsub_v1.PublisherClient | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        admin_timeout: float = 30.0,
        settle_timeout: float = 10.0,
    ):
        """`publisher` publishes messages without an ordering key; `ordered_publisher` (message
        ordering enabled) those with one. They are kept apart because a publisher with ordering
        enabled retries every failed publish without end in the background, whatever retry it is
        given: fine for a key (its order depends on it), but for keyless messages it would outlive
        our deadline and land a second copy after we reported the failure. Without
        `ordered_publisher`, `publisher` must have ordering enabled and serves both."""
        self._publisher = publisher
        self._ordered_publisher = ordered_publisher or publisher
        self._subscriber = subscriber
        self._backoff = backoff
        self._timeout = admin_timeout
        self._settle_timeout = settle_timeout  # ack / nack: small requests that should answer fast
        # How long to wait for a publish: past the library's last retry (it stops starting attempts
        # at the backoff deadline; the last one may run for a whole RPC timeout) and a margin. A
        # shorter wait could report a failure that a late retry then turns into a published copy,
        # and a retry of ours into a duplicate.
        self._publish_wait = backoff.deadline + admin_timeout + 5.0
        self._publish_retry = gretry.Retry(
            predicate=lambda exc: status_code(exc) in TRANSIENT_CODES,
            initial=backoff.initial,
            maximum=backoff.maximum,
            multiplier=2.0,
            timeout=backoff.deadline,
        )

    # --- resources ---------------------------------------------------------------------------------
    def ensure_resources(self, spec: QueueSpec, *, apply: bool = False) -> EnsureResult:
        result = EnsureResult()
        label_drift: list[ResourceDrift] = []
        for topic in (spec.topic, spec.dead_letter_topic, spec.completion_topic):
            if not topic:
                continue
            drift = self._ensure_topic(topic, spec, apply=apply)
            if drift is None:
                result.created.append(topic)
            elif drift:
                label_drift += drift
                if apply:
                    result.updated.append(topic)
        dead_letter_drift = self._ensure_dead_letter_subscription(spec, apply=apply)
        if dead_letter_drift is None:
            result.created.append(spec.dead_letter_subscription)
        elif dead_letter_drift and apply:
            result.updated.append(spec.dead_letter_subscription)

        wanted = self._subscription_settings(spec)
        existing = self._get_subscription(spec.subscription)
        if existing is None:
            if self._create_subscription(spec.subscription, wanted, hint=DEAD_LETTER_IAM_HINT):
                result.created.append(spec.subscription)
            result.drift = label_drift + (dead_letter_drift or [])
            return result

        own_drift = self._drift(spec, existing) + _label_drift(spec.subscription, existing.labels, spec.labels)
        result.drift = own_drift + label_drift + (dead_letter_drift or [])
        fixable = sorted({_mask_path(d.setting) for d in own_drift if _mask_path(d.setting)})
        if apply and fixable:
            wanted["labels"] = {**dict(existing.labels), **dict(spec.labels)}  # others' labels are kept
            # A masked field left out of the body is cleared (that is how "no retry policy" is applied).
            body = {"name": spec.subscription, **{path: wanted[path] for path in fixable if wanted[path] is not None}}
            self._admin(
                lambda: self._subscriber.update_subscription(
                    request={"subscription": body, "update_mask": field_mask_pb2.FieldMask(paths=fixable)},
                    timeout=self._timeout,
                    retry=None,
                ),
                what="update the subscription",
                resource=spec.subscription,
            )
            result.updated.append(spec.subscription)
        for drift in result.drift:
            if drift.setting == "enable_message_ordering":
                logger.warning(
                    "%s: message ordering is %s but the class wants %s; Pub/Sub cannot change it, recreate the "
                    "subscription",
                    spec.subscription,
                    drift.actual,
                    drift.expected,
                )
        return result

    def _ensure_dead_letter_subscription(self, spec: QueueSpec, *, apply: bool) -> list[ResourceDrift] | None:
        """None when this call created it, else its drift (retention below the maximum), fixed
        with apply."""
        existing = self._get_subscription(spec.dead_letter_subscription)
        if existing is None:
            settings = {
                "topic": spec.dead_letter_topic,
                "ack_deadline_seconds": DEAD_LETTER_ACK_DEADLINE,
                "message_retention_duration": _duration(DEAD_LETTER_RETENTION_SECONDS),
                "expiration_policy": {},
                "labels": dict(spec.labels),
            }
            return None if self._create_subscription(spec.dead_letter_subscription, settings) else []
        drift = _label_drift(spec.dead_letter_subscription, existing.labels, spec.labels)
        retention = _seconds(existing.message_retention_duration)
        if retention != DEAD_LETTER_RETENTION_SECONDS:
            drift.append(
                ResourceDrift(
                    resource=spec.dead_letter_subscription,
                    setting="message_retention_duration",
                    expected=DEAD_LETTER_RETENTION_SECONDS,
                    actual=retention,
                )
            )
        if apply and drift:
            paths = sorted({_mask_path(d.setting) or d.setting for d in drift})
            body = {
                "name": spec.dead_letter_subscription,
                "message_retention_duration": _duration(DEAD_LETTER_RETENTION_SECONDS),
                "labels": {**dict(existing.labels), **dict(spec.labels)},
            }
            self._admin(
                lambda: self._subscriber.update_subscription(
                    request={"subscription": body, "update_mask": field_mask_pb2.FieldMask(paths=paths)},
                    timeout=self._timeout,
                    retry=None,
                ),
                what="update the subscription",
                resource=spec.dead_letter_subscription,
            )
        return drift

    def _subscription_settings(self, spec: QueueSpec) -> dict:
        settings = {
            "topic": spec.topic,
            "ack_deadline_seconds": spec.ack_deadline_seconds,
            "dead_letter_policy": {
                "dead_letter_topic": spec.dead_letter_topic,
                "max_delivery_attempts": spec.max_delivery_attempts,
            },
            "enable_message_ordering": spec.ordering,
            "message_retention_duration": _duration(spec.message_retention_seconds),
            "retain_acked_messages": True,  # seek to a time can only replay acked messages that were kept
            "expiration_policy": {},  # no ttl: never expires while idle
            "labels": dict(spec.labels),
        }
        # No retry policy whatever the class says: the backoff is ours (module docstring). As a
        # field-mask update, None clears a policy an older version created.
        settings["retry_policy"] = None
        return settings

    def _drift(self, spec: QueueSpec, sub) -> list[ResourceDrift]:
        actual = {
            "ack_deadline_seconds": sub.ack_deadline_seconds,
            "dead_letter_policy.max_delivery_attempts": sub.dead_letter_policy.max_delivery_attempts,
            "dead_letter_policy.dead_letter_topic": sub.dead_letter_policy.dead_letter_topic,
            "retry_policy.minimum_backoff": _seconds(sub.retry_policy.minimum_backoff),
            "retry_policy.maximum_backoff": _seconds(sub.retry_policy.maximum_backoff),
            "enable_message_ordering": sub.enable_message_ordering,
            "message_retention_duration": _seconds(sub.message_retention_duration),
            "retain_acked_messages": sub.retain_acked_messages,
        }
        expected = {
            "ack_deadline_seconds": spec.ack_deadline_seconds,
            "dead_letter_policy.max_delivery_attempts": spec.max_delivery_attempts,
            "dead_letter_policy.dead_letter_topic": spec.dead_letter_topic,
            "retry_policy.minimum_backoff": 0,  # no policy: we apply the class's backoff ourselves
            "retry_policy.maximum_backoff": 0,
            "enable_message_ordering": spec.ordering,
            "message_retention_duration": spec.message_retention_seconds,
            "retain_acked_messages": True,
        }
        return [
            ResourceDrift(resource=spec.subscription, setting=name, expected=value, actual=actual[name])
            for name, value in expected.items()
            if actual[name] != value
        ]

    def _ensure_topic(self, topic: str, spec: QueueSpec, *, apply: bool) -> list[ResourceDrift] | None:
        """Create the topic if missing (None when this call created it), else its label drift,
        fixed with apply."""
        try:
            existing = self._admin(
                lambda: self._publisher.get_topic(request={"topic": topic}, timeout=self._timeout, retry=None),
                what="read the topic",
                resource=topic,
            )
        except ProviderError as exc:
            if exc.code != "NOT_FOUND":
                raise
            created = self._create(
                lambda: self._publisher.create_topic(
                    request={"name": topic, "labels": dict(spec.labels)}, timeout=self._timeout, retry=None
                ),
                what="create the topic",
                resource=topic,
            )
            return None if created else []
        drift = _label_drift(topic, existing.labels, spec.labels)
        if apply and drift:
            body = {"name": topic, "labels": {**dict(existing.labels), **dict(spec.labels)}}
            self._admin(
                lambda: self._publisher.update_topic(
                    request={"topic": body, "update_mask": field_mask_pb2.FieldMask(paths=["labels"])},
                    timeout=self._timeout,
                    retry=None,
                ),
                what="update the topic",
                resource=topic,
            )
        return drift

    def _get_subscription(self, subscription: str):
        try:
            return self._admin(
                lambda: self._subscriber.get_subscription(
                    request={"subscription": subscription}, timeout=self._timeout, retry=None
                ),
                what="read the subscription",
                resource=subscription,
            )
        except ProviderError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise

    def _create_subscription(self, subscription: str, settings: dict, *, hint: str = "") -> bool:
        body = {"name": subscription, **{key: value for key, value in settings.items() if value is not None}}
        return self._create(
            lambda: self._subscriber.create_subscription(request=body, timeout=self._timeout, retry=None),
            what="create the subscription",
            resource=subscription,
            hint=hint,
        )

    def _create(self, fn, *, what: str, resource: str, hint: str = "") -> bool:
        try:
            self._admin(fn, what=what, resource=resource, hint=hint)
            return True
        except ProviderError as exc:
            if exc.code == "ALREADY_EXISTS":  # another process won the race: fine
                return False
            raise

    def _admin(self, fn, *, what: str, resource: str, role: str = PUBSUB_ADMIN_ROLE, hint: str = "", deadline=None):
        return call_with_retry(
            fn, what=what, resource=resource, role=role, backoff=self._backoff, hint=hint, deadline=deadline
        )

    # --- publishing ----------------------------------------------------------------------------------
    def publish(
        self, spec: QueueSpec, messages: Sequence[OutboundMessage], *, topic: str = "", deadline: float | None = None
    ) -> list[str]:
        return self._publish(topic or spec.topic, messages, deadline=deadline)

    def _publish(
        self,
        topic: str,
        messages: Sequence[OutboundMessage],
        *,
        deadline: float | None = None,
        on_published: Callable[[int, str], None] | None = None,
    ) -> list[str]:
        """`on_published(index, message_id)` is called for each message Pub/Sub accepted, also
        when others of the batch failed (the failure is raised after).

        With a `deadline` (a caller that must answer in time, e.g. an ingestion request) the
        library's retries stop at it too, so a publish given up on rarely lands later; when one
        does, its key was released by the caller and the worker kit's completed-key check skips
        the second copy."""
        for message in messages:
            clash = RESERVED_ATTRIBUTES.intersection(message.attributes)
            if clash:
                raise ProviderError(
                    f"Cannot publish to {topic}: the attribute names {', '.join(sorted(clash))} are reserved by the "
                    "Pub/Sub client library; rename them.",
                    permanent=True,
                    code="INVALID_ARGUMENT",
                    resource=topic,
                )
            # The emulator does not enforce Pub/Sub's limits: refuse here what Google would refuse.
            problems = message_problems(message)
            if problems:
                raise ProviderError(
                    f"Cannot publish to {topic}: {' '.join(problems)}",
                    permanent=True,
                    code="INVALID_ARGUMENT",
                    resource=topic,
                )
        retry, rpc_timeout, wait = self._publish_retry, self._timeout, self._publish_wait
        if deadline is not None:
            retry, rpc_timeout, wait = retry.with_timeout(deadline), min(rpc_timeout, deadline), deadline
        futures = [
            (self._ordered_publisher if message.ordering_key else self._publisher).publish(
                topic,
                message.data,
                ordering_key=message.ordering_key,
                retry=retry,
                timeout=rpc_timeout,
                **message.attributes,
            )
            for message in messages
        ]
        ids: list[str] = []
        failure: BaseException | None = None
        paused_keys: set[str] = set()
        give_up_at = time.monotonic() + wait  # one wait for the whole batch, not one per message
        for index, (message, future) in enumerate(zip(messages, futures, strict=True)):
            try:
                ids.append(future.result(timeout=max(0.0, give_up_at - time.monotonic())))
                if on_published:
                    on_published(index, ids[-1])
            except FutureTimeoutError:
                failure = failure or ProviderError(
                    f"Publishing to {topic} did not complete within {wait:g} s; Pub/Sub may be unavailable.",
                    permanent=False,
                    code="DEADLINE_EXCEEDED",
                    resource=topic,
                )
            except Exception as exc:
                failure = failure or exc
                if message.ordering_key:
                    paused_keys.add(message.ordering_key)
        for key in paused_keys:
            # After a failure the library refuses further messages for the key until resumed.
            self._ordered_publisher.resume_publish(topic, key)
        if failure is not None:
            if isinstance(failure, ProviderError):
                raise failure
            if isinstance(failure, gexc.GoogleAPIError):
                raise to_provider_error(
                    failure, what="publish to", resource=topic, role=PUBSUB_PUBLISHER_ROLE
                ) from failure
            raise ProviderError(
                f"Publishing to {topic} did not complete: {failure}", permanent=False, code="", resource=topic
            ) from failure
        return ids

    def republish(
        self,
        spec: QueueSpec,
        messages: Sequence[OutboundMessage],
        *,
        velocity: float | None = None,
        on_published: Callable[[int, str], None] | None = None,
    ) -> list[str]:
        if not velocity:
            # All at once: the client batches them and the futures are awaited together.
            return self._publish(spec.topic, messages, on_published=on_published)
        # One at a time on a fixed schedule, so the cap holds and progress is exact after a crash.
        interval = 1.0 / velocity
        started = time.monotonic()
        ids = []
        for index, message in enumerate(messages):
            wait = started + index * interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            [message_id] = self._publish(spec.topic, [message])
            ids.append(message_id)
            if on_published:
                on_published(index, message_id)
        return ids

    # --- consuming -------------------------------------------------------------------------------------
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
        executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix=f"consume-{spec.slug}")
        future = self._subscriber.subscribe(
            spec.subscription,
            callback=lambda message: self._deliver(spec, handler, message, stop),
            flow_control=pubsub_v1.types.FlowControl(max_messages=max_concurrency),
            scheduler=ThreadScheduler(executor),
            # In-flight handlers finish (and ack) before shutdown; messages not yet handed out are nacked.
            await_callbacks_on_shutdown=True,
        )
        try:
            while not stop.wait(0.1) and not future.done():
                pass
        finally:
            future.cancel()
            try:
                future.result()
            except gexc.GoogleAPIError as exc:
                raise to_provider_error(
                    exc, what="pull from", resource=spec.subscription, role=PUBSUB_SUBSCRIBER_ROLE
                ) from exc

    def _deliver(self, spec: QueueSpec, handler: MessageHandler, message, stop: threading.Event) -> None:
        received = ReceivedMessage(
            message_id=message.message_id,
            ack_id=message.ack_id,
            data=message.data,
            attributes=dict(message.attributes),
            ordering_key=message.ordering_key,
            delivery_attempt=message.delivery_attempt or 1,
            publish_time=message.publish_time,
        )
        while True:
            disposition = self._run_handler(spec, handler, received)
            if disposition.outcome is Outcome.ACK:
                message.ack()
                return
            delay = disposition.delay_seconds or retry_backoff_seconds(
                attempts=received.delivery_attempt,
                minimum=spec.min_backoff_seconds,
                maximum=spec.max_backoff_seconds,
            )
            if self._retry_in_process(spec, received, stop, delay):
                # The key's next messages stay on hold in the library while this callback runs.
                received = replace(received, delivery_attempt=received.delivery_attempt + 1)
                continue
            if delay > 0:
                message.modify_ack_deadline(math.ceil(delay))
                message.drop()  # stop the lease manager from extending it, so the deadline is the delay
            else:
                message.nack()
            return

    @staticmethod
    def _run_handler(spec: QueueSpec, handler: MessageHandler, received: ReceivedMessage) -> Disposition:
        try:
            return handler(received)
        except Exception:
            logger.exception("%s: handler raised on message %s; nacking it", spec.slug, received.message_id)
            return Disposition.nack()

    @staticmethod
    def _retry_in_process(spec: QueueSpec, received: ReceivedMessage, stop: threading.Event, delay: float) -> bool:
        """Wait out the delay and run a failed keyed message again here, instead of nacking it.

        A nack (or a dropped lease) of an ordered message makes the client library release the
        key at once: the key's next messages, already pulled and on hold, reach the handler
        before Pub/Sub redelivers the failed one, so per-key order breaks on the first retry.
        Holding the callback keeps the lease extended and the key held, as the local provider
        holds a key until its earlier message is acked. The last attempt, and a worker that is
        stopping, fall back to a real nack: Pub/Sub then dead-letters or redelivers it."""
        if not (spec.ordering and received.ordering_key):
            return False
        if received.delivery_attempt >= spec.max_delivery_attempts:
            return False
        return not stop.wait(delay)

    # --- unary pull and settling ----------------------------------------------------------------------
    def pull(self, spec: QueueSpec, *, max_messages: int, timeout: float = 2.0) -> list[ReceivedMessage]:
        return self._pull(spec.subscription, max_messages=max_messages, timeout=timeout)

    def _pull(self, subscription: str, *, max_messages: int, timeout: float) -> list[ReceivedMessage]:
        def once():
            try:
                # retry=None: the library's default would retry an empty wait for up to 60 s
                return self._subscriber.pull(
                    request={"subscription": subscription, "max_messages": max_messages}, timeout=timeout, retry=None
                ).received_messages
            except gexc.DeadlineExceeded:
                return []  # nothing arrived in time

        received = self._admin(
            once,
            what="pull from",
            resource=subscription,
            role=PUBSUB_SUBSCRIBER_ROLE,
            deadline=max(timeout, self._backoff.initial),
        )
        return [
            ReceivedMessage(
                message_id=item.message.message_id,
                ack_id=item.ack_id,
                data=item.message.data,
                attributes=dict(item.message.attributes),
                ordering_key=item.message.ordering_key,
                delivery_attempt=item.delivery_attempt or 1,
                publish_time=item.message.publish_time,
            )
            for item in received
        ]

    def ack(self, spec: QueueSpec, ack_ids: Sequence[str]) -> None:
        self._acknowledge(spec.subscription, ack_ids)

    def nack(self, spec: QueueSpec, ack_ids: Sequence[str], *, delay_seconds: float = 0.0) -> None:
        seconds = math.ceil(max(0.0, min(600.0, delay_seconds)))
        for chunk in _chunks(ack_ids):
            self._admin(
                lambda chunk=chunk: self._subscriber.modify_ack_deadline(
                    request={"subscription": spec.subscription, "ack_ids": chunk, "ack_deadline_seconds": seconds},
                    timeout=self._settle_timeout,
                    retry=None,
                ),
                what="nack messages of",
                resource=spec.subscription,
                role=PUBSUB_SUBSCRIBER_ROLE,
            )

    def _acknowledge(self, subscription: str, ack_ids: Sequence[str]) -> None:
        for chunk in _chunks(ack_ids):
            self._admin(
                lambda chunk=chunk: self._subscriber.acknowledge(
                    request={"subscription": subscription, "ack_ids": chunk}, timeout=self._settle_timeout, retry=None
                ),
                what="acknowledge messages of",
                resource=subscription,
                role=PUBSUB_SUBSCRIBER_ROLE,
            )

    def peek_dead_letters(self, spec: QueueSpec, *, max_messages: int) -> list[ReceivedMessage]:
        return self._pull(spec.dead_letter_subscription, max_messages=max_messages, timeout=PEEK_TIMEOUT)

    def ack_dead_letters(self, spec: QueueSpec, ack_ids: Sequence[str]) -> None:
        self._acknowledge(spec.dead_letter_subscription, ack_ids)

    # --- replay ------------------------------------------------------------------------------------------
    def seek(self, spec: QueueSpec, *, to_time: datetime | None = None, to_snapshot: str | None = None) -> None:
        if (to_time is None) == (to_snapshot is None):
            raise ValueError("seek needs exactly one of to_time and to_snapshot")
        request: dict = {"subscription": spec.subscription}
        if to_time is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(to_time if to_time.tzinfo else to_time.replace(tzinfo=UTC))
            request["time"] = stamp
        else:
            request["snapshot"] = self._snapshot_path(spec, to_snapshot)
        self._admin(
            lambda: self._subscriber.seek(request=request, timeout=self._timeout, retry=None),
            what="seek",
            resource=spec.subscription,
        )

    def create_snapshot(self, spec: QueueSpec, name: str) -> SnapshotInfo:
        path = self._snapshot_path(spec, name)
        snapshot = self._admin(
            lambda: self._subscriber.create_snapshot(
                request={"name": path, "subscription": spec.subscription}, timeout=self._timeout, retry=None
            ),
            what="create a snapshot of",
            resource=spec.subscription,
        )
        expire = snapshot.expire_time
        return SnapshotInfo(name=snapshot.name, expire_time=expire if expire and expire.timestamp() > 0 else None)

    def topic_subscriptions(self, spec: QueueSpec) -> list[str]:
        names = self._admin(
            lambda: list(
                self._publisher.list_topic_subscriptions(
                    request={"topic": spec.topic}, timeout=self._timeout, retry=None
                )
            ),
            what="list the subscriptions of",
            resource=spec.topic,
            role=PUBSUB_VIEWER_ROLE,
        )
        return sorted(names)

    def list_snapshots(self, spec: QueueSpec) -> list[SnapshotInfo]:
        project = f"projects/{_project(spec.subscription)}"
        snapshots = self._admin(
            # Snapshots are listed per project; a subscription may seek to those of its topic only.
            lambda: list(
                self._subscriber.list_snapshots(request={"project": project}, timeout=self._timeout, retry=None)
            ),
            what="list the snapshots of",
            resource=project,
        )
        return sorted(
            (
                SnapshotInfo(
                    name=s.name, expire_time=s.expire_time if s.expire_time and s.expire_time.timestamp() > 0 else None
                )
                for s in snapshots
                if s.topic == spec.topic
            ),
            key=lambda info: info.name,
        )

    @staticmethod
    def _snapshot_path(spec: QueueSpec, name: str) -> str:
        return name if name.startswith("projects/") else f"projects/{_project(spec.subscription)}/snapshots/{name}"


def _chunks(ack_ids: Sequence[str]):
    ids = list(ack_ids)
    for start in range(0, len(ids), ACK_IDS_PER_REQUEST):
        yield ids[start : start + ACK_IDS_PER_REQUEST]
