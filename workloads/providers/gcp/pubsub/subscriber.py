"""Consuming by streaming pull: FlowControl(max_messages=max_concurrency) on a bounded thread pool;
the class's backoff applied by us on a nack (the ack deadline set to the delay and the lease
dropped), and a keyed message retried in this process so its key's order holds through retries."""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

from workloads.providers.base import (
    Disposition,
    MessageHandler,
    Outcome,
    QueueSpec,
    ReceivedMessage,
    retry_backoff_seconds,
)
from workloads.providers.gcp.errors import PUBSUB_SUBSCRIBER_ROLE, to_provider_error

logger = logging.getLogger(__name__)


class ConsumingMixin:
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
            flow_control=pubsub_v1.types.FlowControl(
                max_messages=max_concurrency, max_duration_per_lease_extension=self._max_lease_extension
            ),
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
