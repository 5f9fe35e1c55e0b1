"""celery_send to an AMQP broker (RabbitMQ, through py-amqp) that hangs: in the middle of a batch,
or from the handshake on. The call gives up at its deadline, reports the tasks the broker
confirmed before, and its sending thread ends soon after.

The broker is the machine's RabbitMQ (AMQP_TEST_URL, default guest on 127.0.0.1:5672; skipped when
none answers) behind tests/hardening/amqp_hang_proxy.py; each test sends to a queue (and
exchange) of its own and deletes them. No database: celery_send is called directly, as ingestion
calls it."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
from kombu import Connection

from tests.hardening.amqp_hang_proxy import AmqpHangProxy
from tests.workloads.runtime.conftest import wait_for
from workloads.providers.base import OutboundMessage, ProviderError
from workloads.providers.celery import SENDING_THREAD_NAME, celery_send, runtime_celery_app

BROKER_URL = os.environ.get("AMQP_TEST_URL", "amqp://guest:guest@127.0.0.1:5672//")
DEADLINE = 2.0
MARGIN = 4.0  # how much later than the deadline the call may return (a busy machine)
SENT_BEFORE_THE_HANG = 3
BATCH = 7


def _broker_answers() -> bool:
    address = urlsplit(BROKER_URL)
    try:
        socket.create_connection((address.hostname, address.port or 5672), timeout=1).close()
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _broker_answers(), reason=f"no AMQP broker at {BROKER_URL}")


@pytest.fixture
def queue_name():
    name = f"celeryhang-test-{uuid.uuid4().hex}"
    yield name
    with Connection(BROKER_URL, connect_timeout=5) as connection:
        connection.default_channel.queue_delete(name)
        connection.default_channel.exchange_delete(name)  # Celery's default exchange has the queue's name


@pytest.fixture
def proxy(settings, queue_name):
    """The Celery runtimes' broker, reached through an AmqpHangProxy; tasks go to `queue_name`."""
    proxy = AmqpHangProxy(urlsplit(BROKER_URL).port or 5672)
    settings.RUNTIME_CELERY_BROKER_URL = proxy.url
    settings.RUNTIME_CELERY_BROKER_TRANSPORT_OPTIONS = {}
    runtime_celery_app.cache_clear()
    runtime_celery_app().conf.task_default_queue = queue_name
    yield proxy
    runtime_celery_app.cache_clear()
    proxy.stop()


def _messages() -> list[OutboundMessage]:
    return [OutboundMessage(data=b'{"n": %d}' % n, attributes={"idempotency_key": f"key-{n}"}) for n in range(BATCH)]


def _send(published: dict[int, str]) -> tuple[ProviderError, float]:
    started = time.monotonic()
    with pytest.raises(ProviderError) as failure:
        celery_send("legacy.process_document", _messages(), deadline=DEADLINE, on_published=published.__setitem__)
    return failure.value, time.monotonic() - started


def _queued_task_ids(queue_name: str) -> list[str]:
    ids = []
    with Connection(BROKER_URL, connect_timeout=5) as connection:
        channel = connection.default_channel
        while (message := channel.basic_get(queue_name, no_ack=True)) is not None:
            ids.append(message.headers["id"])
    return ids


def _sending_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(f"{SENDING_THREAD_NAME} ")]


def test_a_broker_that_hangs_mid_batch_keeps_the_receipts_of_the_tasks_it_confirmed(proxy, queue_name):
    proxy.hang_after(2 * SENT_BEFORE_THE_HANG)  # each task is two publishes: it and its task-sent event
    published: dict[int, str] = {}

    error, elapsed = _send(published)

    assert error.code == "UNAVAILABLE" and not error.permanent
    assert elapsed < DEADLINE + MARGIN, elapsed
    # Reported are exactly the tasks in the broker: a publish written to a silent socket is not sent.
    assert sorted(published) == list(range(SENT_BEFORE_THE_HANG)), published
    assert _queued_task_ids(queue_name) == [published[index] for index in sorted(published)]
    wait_for(_sending_threads, lambda threads: not threads, timeout=DEADLINE + MARGIN)


def test_a_broker_that_never_answers_the_handshake_is_given_up_on_at_the_deadline(proxy, queue_name):
    proxy.hang()
    published: dict[int, str] = {}

    error, elapsed = _send(published)

    assert error.code == "UNAVAILABLE"
    assert elapsed < DEADLINE + MARGIN, elapsed
    assert published == {}
    wait_for(_sending_threads, lambda threads: not threads, timeout=DEADLINE + MARGIN)
