"""Unary pull and settling: pull, ack and nack (in chunks of the library's own batch size), and
peeking at and acknowledging dead letters."""

from __future__ import annotations

import math
from collections.abc import Sequence

from google.api_core import exceptions as gexc

from workloads.providers.base import QueueSpec, ReceivedMessage
from workloads.providers.gcp.errors import PUBSUB_SUBSCRIBER_ROLE

ACK_IDS_PER_REQUEST = 1000  # the client library's own batch size for acks
PEEK_TIMEOUT = 2.0  # seconds a dead-letter peek waits for messages


class PullingMixin:
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


def _chunks(ack_ids: Sequence[str]):
    ids = list(ack_ids)
    for start in range(0, len(ids), ACK_IDS_PER_REQUEST):
        yield ids[start : start + ACK_IDS_PER_REQUEST]
