"""The ports' delete operations (a class deleted with its resources): the same on every provider,
idempotent (a resource already gone answers False, never an error), and never cutting off a
subscription by deleting the topic under it."""

import pytest

from tests.queue_sentinel import before_a_sentinel
from workloads.providers.base import OutboundMessage, ProviderError


def _queue_resources_in_order(spec):
    # Subscriptions first: a topic with subscriptions attached is refused.
    return [
        ("subscription", spec.subscription),
        ("subscription", spec.dead_letter_subscription),
        ("topic", spec.topic),
        ("topic", spec.dead_letter_topic),
    ]


def _delete(queue, kind, name):
    return queue.delete_subscription(name) if kind == "subscription" else queue.delete_topic(name)


def test_a_class_queue_resources_are_deleted_once_and_then_already_gone(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    queue.publish(spec, [OutboundMessage(b"left behind")])
    resources = _queue_resources_in_order(spec)
    assert [_delete(queue, kind, name) for kind, name in resources] == [True, True, True, True]
    assert [_delete(queue, kind, name) for kind, name in resources] == [False, False, False, False]
    with pytest.raises(ProviderError) as caught:
        queue.publish(spec, [OutboundMessage(b"to nowhere")])
    assert caught.value.permanent and caught.value.code == "NOT_FOUND"
    # Really gone: provisioning again creates all four, with none of the old messages.
    assert sorted(queue.ensure_resources(spec).created) == sorted(name for _, name in resources)
    assert before_a_sentinel(queue, spec) == []


def test_a_topic_with_a_subscription_attached_is_refused_and_kept(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue()
    with pytest.raises(ProviderError) as caught:
        queue.delete_topic(spec.topic)
    assert caught.value.permanent and caught.value.code == "FAILED_PRECONDITION"
    assert spec.subscription in caught.value.message
    queue.publish(spec, [OutboundMessage(b"still here")])
    assert [m.data for m in queue.pull(spec, max_messages=1, timeout=5.0)] == [b"still here"]


def test_a_pool_is_deleted_once_and_then_already_gone(harness):
    pools = harness.providers.pools
    spec = harness.pool_spec()
    harness.create_pool(spec, instance_count=2)
    assert pools.delete(spec) is True
    with pytest.raises(ProviderError) as caught:
        pools.get(spec)
    assert caught.value.code == "NOT_FOUND"
    assert pools.delete(spec) is False


def test_a_pool_delete_is_retried_through_transient_failures(harness):
    spec = harness.pool_spec()
    harness.create_pool(spec, instance_count=1)
    if not harness.fail_next_pool_calls("UNAVAILABLE", times=2):
        pytest.skip(f"{harness.name}: no fault injection (the local provider has no network to fail)")
    assert harness.providers.pools.delete(spec) is True


def test_a_denied_pool_delete_is_permanent_and_keeps_the_pool(harness):
    spec = harness.pool_spec()
    harness.create_pool(spec, instance_count=1)
    if not harness.fail_next_pool_calls("PERMISSION_DENIED", times=1):
        pytest.skip(f"{harness.name}: no fault injection (the local provider has no network to fail)")
    with pytest.raises(ProviderError) as caught:
        harness.providers.pools.delete(spec)
    assert caught.value.permanent
    assert "roles/run.developer" in caught.value.message
    assert harness.providers.pools.get(spec).instance_count == 1
