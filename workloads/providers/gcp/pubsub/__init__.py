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
  pool. `max_lease_extension_seconds` (PUBSUB_MAX_LEASE_EXTENSION_SECONDS) caps each lease
  extension, and with it the stream's ack deadline: a message whose consumer vanished without a
  nack Pub/Sub accepts comes back within that time instead of the library's 60 s or more.

One module per concern, each a mixin of `PubSubQueue` (assembled here): admin.py (topics,
subscriptions, drift), deletion.py (deleting them), publisher.py (publishing, ordering,
republish), subscriber.py (streaming pull), pull.py (unary pull, ack, nack, dead-letter peek),
snapshots.py (seek and snapshots), errors.py (retries and error mapping).
"""

from __future__ import annotations

from google.api_core import retry as gretry
from google.cloud import pubsub_v1

from workloads.providers.base import Queue
from workloads.providers.gcp.errors import DEFAULT_BACKOFF, TRANSIENT_CODES, Backoff, status_code
from workloads.providers.gcp.pubsub.admin import DEAD_LETTER_ACK_DEADLINE, SETTINGS_MASK, AdminMixin
from workloads.providers.gcp.pubsub.deletion import PubSubDeletionMixin
from workloads.providers.gcp.pubsub.errors import CallsMixin
from workloads.providers.gcp.pubsub.publisher import RESERVED_ATTRIBUTES, PublishingMixin
from workloads.providers.gcp.pubsub.pull import ACK_IDS_PER_REQUEST, PEEK_TIMEOUT, PullingMixin
from workloads.providers.gcp.pubsub.snapshots import SnapshotsMixin
from workloads.providers.gcp.pubsub.subscriber import ConsumingMixin

__all__ = [
    "ACK_IDS_PER_REQUEST",
    "DEAD_LETTER_ACK_DEADLINE",
    "PEEK_TIMEOUT",
    "RESERVED_ATTRIBUTES",
    "SETTINGS_MASK",
    "PubSubQueue",
]


class PubSubQueue(
    PubSubDeletionMixin, AdminMixin, PublishingMixin, ConsumingMixin, PullingMixin, SnapshotsMixin, CallsMixin, Queue
):
    def __init__(
        self,
        *,
        publisher: pubsub_v1.PublisherClient,
        subscriber: pubsub_v1.SubscriberClient,
        ordered_publisher: pubsub_v1.PublisherClient | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        admin_timeout: float = 30.0,
        settle_timeout: float = 10.0,
        max_lease_extension_seconds: int = 0,
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
        # 0: the library's default (leases stretched to the 99th percentile of ack times, a 60 s
        # stream deadline); otherwise FlowControl.max_duration_per_lease_extension (10 to 600 s).
        self._max_lease_extension = max_lease_extension_seconds
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
