"""Topics and subscriptions: create what is missing, report drift from the class's spec and, with
apply, fix what Pub/Sub lets us change (labels, ack deadline, dead-letter policy, retention; a
retry policy is cleared: the backoff is ours, see the package docstring). Message ordering cannot
change after a subscription is created: a difference is reported as drift on every run.
"""

from __future__ import annotations

import logging

from google.protobuf import duration_pb2, field_mask_pb2

from workloads.providers.base import (
    DEAD_LETTER_RETENTION_SECONDS,
    EnsureResult,
    ProviderError,
    QueueSpec,
    ResourceDrift,
)
from workloads.providers.gcp.errors import DEAD_LETTER_IAM_HINT, PUBSUB_VIEWER_ROLE

logger = logging.getLogger(__name__)

DEAD_LETTER_ACK_DEADLINE = 60  # a peeked dead letter stays invisible this long unless acked
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


class AdminMixin:
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
