"""Pub/Sub's message limits hold on every provider: what Google would refuse, each provider refuses
the same way (a permanent INVALID_ARGUMENT naming the limit) and publishes nothing."""

import pytest

from tests.contract.test_queue_contract import _pull_all
from tests.queue_sentinel import before_a_sentinel
from workloads.providers.base import OutboundMessage, ProviderError

# "é" is two bytes of UTF-8: 600 of them are 600 characters but 1,200 bytes.
TOO_LONG_VALUE = "é" * 600
REFUSED = {
    "attribute value": (OutboundMessage(b"x", {"error": TOO_LONG_VALUE}), "1024 bytes"),
    "attribute key": (OutboundMessage(b"x", {"k" * 200 + "é" * 30: "v"}), "256 bytes"),
    "attribute count": (OutboundMessage(b"x", {f"a{i}": "v" for i in range(101)}), "limit of 100"),
    "ordering key": (OutboundMessage(b"x", ordering_key="ö" * 513), "1024 bytes"),
    "message size": (OutboundMessage(b"x" * 10_000_001), "10000000 bytes"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_messages_over_pubsub_limits_are_refused_and_nothing_is_published(harness, case):
    queue = harness.providers.queue
    spec = harness.ready_queue(ordering=True)
    message, limit = REFUSED[case]
    with pytest.raises(ProviderError) as caught:
        queue.publish(spec, [OutboundMessage(b"fine"), message])
    error = caught.value
    assert error.permanent and error.code == "INVALID_ARGUMENT"
    assert limit in error.message
    assert before_a_sentinel(queue, spec) == []  # the whole publish was refused


def test_values_at_the_limits_in_multibyte_text_are_accepted(harness):
    queue = harness.providers.queue
    spec = harness.ready_queue(ordering=True)
    value = "é" * 512  # exactly 1,024 bytes
    queue.publish(spec, [OutboundMessage(b"edge", {"error": value}, ordering_key="ö" * 512)])
    [received] = _pull_all(queue, spec, 1)
    assert received.attributes["error"] == value and received.ordering_key == "ö" * 512
    queue.ack(spec, [received.ack_id])
