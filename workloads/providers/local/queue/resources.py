"""Topics and subscriptions: created when missing, compared with the class's settings (drift),
and brought in line when asked (`apply`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import transaction

from workloads.providers.base import DEAD_LETTER_RETENTION_SECONDS, EnsureResult, QueueSpec, ResourceDrift
from workloads.providers.local.models import LocalSubscription, LocalTopic
from workloads.providers.local.names import not_found, topic_in_use
from workloads.providers.local.queue.common import SUBSCRIPTION_HINT, TOPIC_HINT

DEAD_LETTER_ACK_DEADLINE_SECONDS = 60  # how long a peeked dead letter stays hidden from other peeks


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


class ResourcesMixin:
    using: str
    _now: Callable[[], datetime]

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
            raise not_found("topic", name, TOPIC_HINT) from None

    def _subscription(self, name: str) -> LocalSubscription:
        try:
            return LocalSubscription.objects.using(self.using).get(name=name)
        except LocalSubscription.DoesNotExist:
            raise not_found("subscription", name, SUBSCRIPTION_HINT) from None

    # --- publishing ---------------------------------------------------------------------------------
    def topic_subscriptions(self, spec: QueueSpec) -> list[str]:
        subscriptions = LocalSubscription.objects.using(self.using).filter(topic__name=spec.topic)
        return list(subscriptions.order_by("name").values_list("name", flat=True))

    # --- deleting ----------------------------------------------------------------------------------
    def delete_subscription(self, name: str) -> bool:
        # Its deliveries (acked or not) and snapshots go with it (ON DELETE CASCADE).
        deleted, _ = LocalSubscription.objects.using(self.using).filter(name=name).delete()
        return bool(deleted)

    def delete_topic(self, name: str) -> bool:
        with transaction.atomic(using=self.using):
            topic = LocalTopic.objects.using(self.using).select_for_update().filter(name=name).first()
            if topic is None:
                return False
            # A local subscription cannot outlive its topic (Pub/Sub would detach it), so a topic
            # that still has subscriptions is refused on both providers alike.
            attached = list(topic.subscriptions.order_by("name").values_list("name", flat=True)[:5])
            if attached:
                raise topic_in_use(name, attached)
            topic.delete()
        return True
