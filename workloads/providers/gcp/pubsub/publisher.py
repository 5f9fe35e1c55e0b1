"""Publishing: keyless messages through one client, keyed ones through the ordering-enabled one
(see PubSubQueue.__init__), each batch's futures awaited together against one deadline, and a key
the library paused after a failure resumed; republish paces a replay at a velocity cap."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeoutError

from workloads.providers.base import OutboundMessage, ProviderError, QueueSpec
from workloads.providers.gcp.pubsub.errors import publish_error
from workloads.providers.limits import message_problems

# The library takes attributes as keyword arguments next to these parameters, so an attribute with
# one of these names would be swallowed by the parameter instead of being sent.
RESERVED_ATTRIBUTES = frozenset({"topic", "data", "ordering_key", "retry", "timeout"})


class PublishingMixin:
    def publish(
        self,
        spec: QueueSpec,
        messages: Sequence[OutboundMessage],
        *,
        topic: str = "",
        deadline: float | None = None,
        on_published: Callable[[int, str], None] | None = None,
    ) -> list[str]:
        return self._publish(topic or spec.topic, messages, deadline=deadline, on_published=on_published)

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
            raise publish_error(failure, topic=topic) from failure
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
