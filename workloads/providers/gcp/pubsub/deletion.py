"""Deleting a class's topics and subscriptions on Pub/Sub (a mixin of PubSubQueue, with the
other admin calls in admin.py).

Idempotent: NOT_FOUND is "already gone", which also covers a delete that succeeded but whose
answer was lost and retried. A topic that still has subscriptions attached is refused instead of
deleted: Pub/Sub would detach them and they would silently stop receiving, and the local provider
refuses it too, so a deletion behaves the same everywhere.
"""

from __future__ import annotations

from workloads.providers.base import ProviderError
from workloads.providers.gcp.errors import PUBSUB_ADMIN_ROLE, PUBSUB_VIEWER_ROLE


class PubSubDeletionMixin:
    def delete_subscription(self, name: str) -> bool:
        return self._delete(
            lambda: self._subscriber.delete_subscription(
                request={"subscription": name}, timeout=self._timeout, retry=None
            ),
            what="delete the subscription",
            resource=name,
        )

    def delete_topic(self, name: str) -> bool:
        try:
            attached = self._admin(
                lambda: list(
                    self._publisher.list_topic_subscriptions(request={"topic": name}, timeout=self._timeout, retry=None)
                ),
                what="list the subscriptions of",
                resource=name,
                role=PUBSUB_VIEWER_ROLE,
            )
        except ProviderError as exc:
            if exc.code == "NOT_FOUND":
                return False
            raise
        if attached:
            shown = ", ".join(sorted(attached)[:5])
            raise ProviderError(
                f"The topic {name} still has subscriptions attached ({shown}): delete or move them first; "
                "deleting the topic would cut them off.",
                permanent=True,
                code="FAILED_PRECONDITION",
                resource=name,
            )
        return self._delete(
            lambda: self._publisher.delete_topic(request={"topic": name}, timeout=self._timeout, retry=None),
            what="delete the topic",
            resource=name,
        )

    def _delete(self, fn, *, what: str, resource: str) -> bool:
        try:
            self._admin(fn, what=what, resource=resource, role=PUBSUB_ADMIN_ROLE)
        except ProviderError as exc:
            if exc.code == "NOT_FOUND":
                return False
            raise
        return True
