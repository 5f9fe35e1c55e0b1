"""The broker of a class running on Celery goes away in the middle of a batch: the tasks already
sent keep their receipts, and the client's retry sends only the others.

A legacy Celery worker has no completed-key check: a task sent twice runs twice. The broker is a
throwaway redis-server (as in tests/workloads/runtime/test_celery_runtime.py) behind a proxy that
cuts every connection at the 4th task message of a batch of 7 (tests/hardening/redis_cut_proxy.py);
what was sent is read from Redis itself."""

from __future__ import annotations

import json
import shutil

import pytest
import redis as redis_client
from rest_framework.test import APIClient

from controlplane.roles import Role
from demo.legacy import TASK_NAME
from tests.factories import WorkloadClassFactory
from tests.hardening.redis_cut_proxy import RedisCutProxy
from tests.hardening.test_fault_broker import ThrowawayRedis, _free_port
from workloads.models import IdempotencyRecord
from workloads.providers.celery import runtime_celery_app
from workloads.services.tokens import api_token_issue

pytestmark = [
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
    pytest.mark.django_db(transaction=True),
]

SENT_BEFORE_THE_CUT = 3
BATCH = 7


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
    batch = [{"tenant_id": "acme", "document_id": f"doc-{n}", "revision": 1} for n in range(BATCH)]
    keys = [f"acme:doc-{n}:1" for n in range(BATCH)]
    sent_first, not_sent = keys[:SENT_BEFORE_THE_CUT], keys[SENT_BEFORE_THE_CUT:]

    broker_proxy.cut_after(SENT_BEFORE_THE_CUT)
    response = producer.post("/api/v1/classes/legacy-docs/events", batch, format="json")

    # The batch failed as a whole (the answer of a failed publish: 503, retry later)...
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "UNAVAILABLE"
    assert int(response["Retry-After"]) > 0
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
