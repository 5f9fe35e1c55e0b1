"""The broker of a class running on Celery goes away, or hangs, in the middle of a batch: the tasks
already sent keep their receipts, and the client's retry sends only the others. A broker that hangs
(accepts, reads, never answers) is given up on at the publish deadline, as one that is gone.

A legacy Celery worker has no completed-key check: a task sent twice runs twice. The broker is a
throwaway redis-server (as in tests/workloads/runtime/test_celery_runtime.py) behind a proxy that
cuts every connection, or goes silent, at the 4th task message of a batch of 7, or hangs from the
first connection on (tests/hardening/redis_cut_proxy.py); what was sent is read from Redis itself.

The hanging cases carry a pytest timeout: without a deadline the request would wait forever."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
import redis as redis_client
from rest_framework.test import APIClient

from controlplane.roles import Role
from demo.legacy import TASK_NAME
from tests.factories import WorkloadClassFactory
from tests.hardening.redis_cut_proxy import RedisCutProxy
from tests.hardening.test_fault_broker import ThrowawayRedis, _free_port
from tests.workloads.runtime.conftest import wait_for
from workloads.models import IdempotencyRecord
from workloads.providers.celery import SENDING_THREAD_NAME, runtime_celery_app
from workloads.services.tokens import api_token_issue

pytestmark = [
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
    pytest.mark.django_db(transaction=True),
]

SENT_BEFORE_THE_CUT = 3
BATCH = 7
# The publish deadline of the hanging cases, and how much later than it their 503 may come (the
# request's own database work on a busy machine; a hang would be unbounded).
PUBLISH_TIMEOUT = 2.0
ANSWER_MARGIN = 4.0


@pytest.fixture
def redis_server(tmp_path):
    server = ThrowawayRedis(_free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker_proxy(redis_server, settings):
    """The Celery runtimes' broker, reached through a RedisCutProxy."""
    proxy = RedisCutProxy(redis_server.port)
    settings.RUNTIME_CELERY_BROKER_URL = proxy.url
    settings.RUNTIME_CELERY_BROKER_TRANSPORT_OPTIONS = {}
    runtime_celery_app.cache_clear()
    yield proxy
    runtime_celery_app.cache_clear()
    proxy.stop()


@pytest.fixture
def producer(make_user):
    user = make_user("legacy-producer", Role.VIEWER)
    _token, raw = api_token_issue(actor=None, user=user, name="producer", scopes=["ingest:legacy-docs"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def publish_timeout(settings):
    settings.INGESTION_PUBLISH_TIMEOUT_SECONDS = PUBLISH_TIMEOUT
    return PUBLISH_TIMEOUT


def _batch() -> tuple[list[dict], list[str]]:
    """The events and their idempotency keys."""
    events = [{"tenant_id": "acme", "document_id": f"doc-{n}", "revision": 1} for n in range(BATCH)]
    return events, [f"acme:doc-{n}:1" for n in range(BATCH)]


def _timed_post(client: APIClient, events: list[dict]):
    started = time.monotonic()
    response = client.post("/api/v1/classes/legacy-docs/events", events, format="json")
    return response, time.monotonic() - started


def _assert_unavailable(response) -> None:
    """The answer of a failed publish: 503, retry later."""
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "UNAVAILABLE"
    assert int(response["Retry-After"]) > 0


def _sending_threads() -> list[threading.Thread]:
    """celery_send's threads still talking to the broker."""
    return [thread for thread in threading.enumerate() if thread.name.startswith(f"{SENDING_THREAD_NAME} ")]


def _sent_tasks(server: ThrowawayRedis) -> dict[str, list[str]]:
    """{idempotency key: [task ids]} of the task messages in the broker (no worker takes them)."""
    found: dict[str, list[str]] = {}
    for raw in reversed(redis_client.Redis.from_url(server.url).lrange("celery", 0, -1)):  # oldest first
        headers = json.loads(raw)["headers"]
        found.setdefault(headers["idempotency_key"], []).append(headers["id"])
    return found


def test_a_batch_cut_after_some_tasks_were_sent_is_retried_without_sending_them_again(
    redis_server, broker_proxy, producer
):
    WorkloadClassFactory(slug="legacy-docs", runtime="celery", runtime_resource=TASK_NAME)
    batch, keys = _batch()
    sent_first, not_sent = keys[:SENT_BEFORE_THE_CUT], keys[SENT_BEFORE_THE_CUT:]

    broker_proxy.cut_after(SENT_BEFORE_THE_CUT)
    response = producer.post("/api/v1/classes/legacy-docs/events", batch, format="json")

    # The batch failed as a whole...
    _assert_unavailable(response)
    sent = _sent_tasks(redis_server)
    assert list(sent) == sent_first and all(len(ids) == 1 for ids in sent.values()), sent
    # ...but the tasks sent before the cut keep their receipts; only the others' keys were given back.
    assert dict(IdempotencyRecord.objects.values_list("key", "message_id")) == {
        key: ids[0] for key, ids in sent.items()
    }

    broker_proxy.heal()
    pushes_before_retry = broker_proxy.pushes
    retry = producer.post("/api/v1/classes/legacy-docs/events", batch, format="json")

    assert retry.status_code == 202, retry.content
    body = retry.json()
    assert (body["accepted"], body["duplicates"]) == (len(not_sent), len(sent_first))
    answered = {r["idempotency_key"]: (r["status"], r["message_id"]) for r in body["results"]}
    assert {key: answered[key] for key in sent_first} == {key: ("duplicate", sent[key][0]) for key in sent_first}
    assert all(answered[key][0] == "accepted" for key in not_sent)
    # The retry sent only the tasks not sent before: one task per event in the broker, each the
    # one answered.
    assert broker_proxy.pushes - pushes_before_retry == len(not_sent)
    assert _sent_tasks(redis_server) == {key: [answered[key][1]] for key in keys}
    assert dict(IdempotencyRecord.objects.values_list("key", "message_id")) == {
        key: message_id for key, (_status, message_id) in answered.items()
    }


@pytest.mark.timeout(60)
def test_a_broker_that_hangs_mid_batch_is_given_up_on_at_the_deadline_and_the_retry_sends_only_the_rest(
    redis_server, broker_proxy, producer, publish_timeout
):
    WorkloadClassFactory(slug="legacy-docs", runtime="celery", runtime_resource=TASK_NAME)
    batch, keys = _batch()
    sent_first, not_sent = keys[:SENT_BEFORE_THE_CUT], keys[SENT_BEFORE_THE_CUT:]

    broker_proxy.hang_after(SENT_BEFORE_THE_CUT)
    response, elapsed = _timed_post(producer, batch)

    _assert_unavailable(response)
    assert elapsed < publish_timeout + ANSWER_MARGIN, elapsed
    # The thread that was waiting on the silent broker ends too (its socket timeouts), before any heal.
    wait_for(_sending_threads, lambda threads: not threads, timeout=publish_timeout + ANSWER_MARGIN)
    sent = _sent_tasks(redis_server)
    assert list(sent) == sent_first and all(len(ids) == 1 for ids in sent.values()), sent
    assert dict(IdempotencyRecord.objects.values_list("key", "message_id")) == {
        key: ids[0] for key, ids in sent.items()
    }

    broker_proxy.heal()
    pushes_before_retry = broker_proxy.pushes
    retry = producer.post("/api/v1/classes/legacy-docs/events", batch, format="json")

    assert retry.status_code == 202, retry.content
    body = retry.json()
    assert (body["accepted"], body["duplicates"]) == (len(not_sent), len(sent_first))
    answered = {r["idempotency_key"]: (r["status"], r["message_id"]) for r in body["results"]}
    assert {key: answered[key] for key in sent_first} == {key: ("duplicate", sent[key][0]) for key in sent_first}
    assert broker_proxy.pushes - pushes_before_retry == len(not_sent)
    assert _sent_tasks(redis_server) == {key: [answered[key][1]] for key in keys}


@pytest.mark.timeout(60)
def test_a_broker_that_accepts_connections_and_never_answers_is_given_up_on_at_the_deadline(
    redis_server, broker_proxy, producer, publish_timeout
):
    WorkloadClassFactory(slug="legacy-docs", runtime="celery", runtime_resource=TASK_NAME)
    batch, keys = _batch()

    broker_proxy.hang()  # each connection is accepted, its first command never answered
    response, elapsed = _timed_post(producer, batch)

    _assert_unavailable(response)
    assert elapsed < publish_timeout + ANSWER_MARGIN, elapsed
    # The thread that was waiting on the silent broker ends too (its socket timeouts), before any heal.
    wait_for(_sending_threads, lambda threads: not threads, timeout=publish_timeout + ANSWER_MARGIN)
    assert _sent_tasks(redis_server) == {}
    assert not IdempotencyRecord.objects.exists()  # every key given back

    broker_proxy.heal()
    retry = producer.post("/api/v1/classes/legacy-docs/events", batch, format="json")

    assert retry.status_code == 202, retry.content
    body = retry.json()
    assert (body["accepted"], body["duplicates"]) == (BATCH, 0)
    answered = {r["idempotency_key"]: r["message_id"] for r in body["results"]}
    assert _sent_tasks(redis_server) == {key: [answered[key]] for key in keys}


@pytest.mark.timeout(60)
def test_a_slow_broker_is_given_up_on_at_the_deadline_not_after_every_task(
    redis_server, broker_proxy, producer, publish_timeout
):
    """Each task takes most of the deadline but none times out on its own: the deadline bounds the
    whole batch, not each step."""
    WorkloadClassFactory(slug="legacy-docs", runtime="celery", runtime_resource=TASK_NAME)
    batch, keys = _batch()

    broker_proxy.slow_down(publish_timeout * 0.75)
    response, elapsed = _timed_post(producer, batch)

    _assert_unavailable(response)
    assert elapsed < publish_timeout + ANSWER_MARGIN, elapsed
    wait_for(_sending_threads, lambda threads: not threads, timeout=publish_timeout + ANSWER_MARGIN)
    # The tasks the broker took in time keep their receipts, the first ones of the batch. The one
    # on its way at the deadline may land after it without a receipt (a retry sends it again):
    # what a deadline cannot tell apart, as with any write whose reply comes too late.
    receipts = dict(IdempotencyRecord.objects.values_list("key", "message_id"))
    sent = _sent_tasks(redis_server)
    assert list(receipts) == keys[: len(receipts)] and len(receipts) < BATCH, receipts
    assert all(sent[key] == [message_id] for key, message_id in receipts.items()), (sent, receipts)
    assert len(sent) <= len(receipts) + 1, sent
