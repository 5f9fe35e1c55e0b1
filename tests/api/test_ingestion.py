"""POST /api/v1/classes/<slug>/events against the embedded local provider."""

import re
import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import WorkloadClassFactory
from workloads.models import IdempotencyRecord
from workloads.providers import get_providers
from workloads.providers.base import (
    ATTR_CLASS,
    ATTR_IDEMPOTENCY_KEY,
    ATTR_INGESTED_AT,
    ATTR_SCHEMA_VERSION,
    ATTR_TRACE_ID,
)
from workloads.providers.specs import queue_spec
from workloads.services.ingestion import idempotency_records_prune
from workloads.services.tokens import api_token_issue

URL = "/api/v1/classes/{slug}/events"


def _event(**overrides):
    event = {"tenant_id": "acme", "document_id": "doc-1", "revision": 1}
    event.update(overrides)
    return event


def _queued(workload_class, expected_at_most=100):
    """Everything waiting in the class's queue (leased and settled back so tests can look)."""
    queue = get_providers().queue
    spec = queue_spec(workload_class)
    messages = queue.pull(spec, max_messages=expected_at_most, timeout=0.5)
    if messages:
        queue.nack(spec, [m.ack_id for m in messages])
    return messages


@pytest.fixture
def doc_class(db):
    workload_class = WorkloadClassFactory(slug="doc-jobs")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    return workload_class


@pytest.fixture
def ordered_class(doc_class):
    doc_class.ordering_key_template = "{tenant_id}"
    doc_class.save()
    get_providers().queue.ensure_resources(queue_spec(doc_class))
    return doc_class


@pytest.fixture
def producer(db, make_user):
    from controlplane.roles import Role

    user = make_user("producer-bot", Role.VIEWER)
    _token, raw = api_token_issue(actor=None, user=user, name="producer", scopes=["ingest:doc-jobs"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _post(client, body, slug="doc-jobs", **headers):
    return client.post(URL.format(slug=slug), body, format="json", headers=headers)


def test_an_accepted_event_is_published_with_its_attributes(ordered_class, producer):
    trace = "0af7651916cd43dd8448eb211c80319c"
    response = _post(producer, _event(), traceparent=f"00-{trace}-b7ad6b7169203331-01")
    assert response.status_code == 202, response.content
    receipt = response.json()
    assert receipt["status"] == "accepted" and receipt["duplicate"] is False
    assert receipt["idempotency_key"] == "acme:doc-1:1" and receipt["ordering_key"] == "acme"
    [message] = _queued(ordered_class)
    assert message.message_id == receipt["message_id"]
    assert message.ordering_key == "acme"
    assert message.attributes[ATTR_CLASS] == "doc-jobs"
    assert message.attributes[ATTR_IDEMPOTENCY_KEY] == "acme:doc-1:1"
    assert message.attributes[ATTR_SCHEMA_VERSION] == "1"
    assert message.attributes[ATTR_TRACE_ID] == trace
    assert message.attributes[ATTR_INGESTED_AT].endswith("Z")


def test_an_ordering_key_up_to_pubsubs_limit_is_kept_whole(ordered_class, producer):
    tenant = "t" * 1000
    first = _post(producer, _event(tenant_id=tenant), **{"Idempotency-Key": "long-order"})
    assert first.status_code == 202, first.content
    assert first.json()["ordering_key"] == tenant
    again = _post(producer, _event(tenant_id=tenant), **{"Idempotency-Key": "long-order"})
    assert again.status_code == 200 and again.json()["ordering_key"] == tenant
    assert again.json()["message_id"] == first.json()["message_id"]


def test_an_ordering_key_over_pubsubs_byte_limit_is_400_naming_it_and_nothing_is_enqueued(ordered_class, producer):
    tenant = "é" * 600  # 600 characters, 1,200 bytes of UTF-8: Pub/Sub takes at most 1,024 bytes
    response = _post(producer, _event(tenant_id=tenant), **{"Idempotency-Key": "multibyte-order"})
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert error["field"] == "ordering_key" and "1024 bytes" in error["message"]
    assert _queued(ordered_class) == []
    assert not IdempotencyRecord.objects.exists()


def test_an_event_over_pubsubs_message_size_is_400_naming_the_limit_and_nothing_is_enqueued(doc_class, producer):
    note = "é" * 5_000_100  # about 10,000,200 bytes of UTF-8: under the 10 MiB body cap, over Pub/Sub's 10 MB
    response = _post(producer, _event(note=note))
    assert response.status_code == 400, response.content[:300]
    [error] = response.json()["errors"]
    assert "10000000 bytes" in error["message"]
    assert _queued(doc_class) == []
    assert not IdempotencyRecord.objects.exists()


def test_an_invalid_event_is_400_with_field_errors_and_nothing_is_enqueued(doc_class, producer):
    response = _post(producer, {"tenant_id": "", "revision": "three"})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error" and body["status"] == "rejected"
    assert {(e["field"], e["code"]) for e in body["errors"]} == {
        ("tenant_id", "minLength"),
        ("document_id", "required"),
        ("revision", "type"),
    }
    assert _queued(doc_class) == []
    assert not IdempotencyRecord.objects.exists()


def test_an_empty_event_reports_each_missing_field_once(doc_class, producer):
    required = doc_class.payload_schema["required"]
    response = _post(producer, {})
    assert response.status_code == 400
    assert sorted(e["field"] for e in response.json()["errors"]) == sorted(required)


def test_a_batch_accepts_the_valid_events_and_reports_each(doc_class, producer):
    batch = [_event(document_id="a"), {"tenant_id": "acme"}, _event(document_id="b"), _event(document_id="a")]
    response = _post(producer, batch)
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"], body["duplicates"], body["conflicts"]) == (2, 1, 1, 0)
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["accepted", "rejected", "accepted", "duplicate"]
    assert body["results"][3]["message_id"] == body["results"][0]["message_id"]
    assert {e["field"] for e in body["results"][1]["errors"]} == {"document_id", "revision"}
    assert len(_queued(doc_class)) == 2


def test_two_spellings_of_the_same_work_are_one_key(doc_class, producer):
    first = _post(producer, _event(tenant_id="acme ", document_id=" doc-1"))
    second = _post(producer, _event())
    assert first.status_code == 202 and second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["message_id"] == first.json()["message_id"]
    assert len(_queued(doc_class)) == 1


def test_the_same_key_with_a_different_payload_is_422(doc_class, producer):
    assert _post(producer, _event(), **{"Idempotency-Key": "k-1"}).status_code == 202
    response = _post(producer, _event(revision=2), **{"Idempotency-Key": "k-1"})
    assert response.status_code == 422
    assert response.json()["type"] == "idempotency_conflict" and "k-1" in response.json()["detail"]
    assert len(_queued(doc_class)) == 1


def test_the_key_is_free_again_after_the_ttl(doc_class, producer):
    doc_class.dedup_ttl_seconds = 60
    doc_class.save()
    first = _post(producer, _event())
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        again = _post(producer, _event())
        assert again.status_code == 202
        assert again.json()["message_id"] != first.json()["message_id"]
        assert idempotency_records_prune(now=timezone.now()) == 0  # the replaced row is the live one


def test_prune_removes_expired_keys_only(doc_class, producer):
    doc_class.dedup_ttl_seconds = 60
    doc_class.save()
    _post(producer, _event(document_id="old"))
    with time_machine.travel(timezone.now() + timedelta(seconds=30)):
        _post(producer, _event(document_id="new"))
    assert idempotency_records_prune(now=timezone.now() + timedelta(seconds=61)) == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["acme:new:1"]


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Idempotency-Key": "x" * 256}, _event(), 400),
        ({"Idempotency-Key": "x" * 255}, _event(), 202),
        ({"Idempotency-Key": "k"}, [_event()], 400),
        ({}, [], 400),
        ({}, [_event(document_id=str(i)) for i in range(1001)], 400),
    ],
)
def test_limits(doc_class, producer, headers, body, status):
    assert _post(producer, body, **headers).status_code == status


def test_an_unknown_class_is_404(doc_class, producer, make_user):
    from controlplane.roles import Role

    user = make_user("any-bot", Role.VIEWER)
    _t, raw = api_token_issue(actor=None, user=user, name="any", scopes=["ingest:*"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert _post(client, _event(), slug="no-such-class").status_code == 404


@pytest.mark.parametrize(
    ("scopes", "status"),
    [(["ingest:doc-jobs"], 202), (["ingest:*"], 202), (["*"], 202), (["ingest:other-class"], 403), (["read"], 403)],
)
def test_token_scopes_are_enforced(doc_class, make_user, scopes, status):
    from controlplane.roles import Role

    user = make_user("scoped-bot", Role.VIEWER)
    _t, raw = api_token_issue(actor=None, user=user, name="scoped", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert _post(client, _event()).status_code == status


def test_an_ingest_token_cannot_read_the_registry(doc_class, producer):
    assert producer.get("/api/v1/classes/").status_code == 403


@pytest.mark.parametrize(("persona", "status"), [("viewer", 403), ("operator", 202), ("admin_user", 202)])
def test_sessions_need_the_operator_role(request, doc_class, client_as, persona, status):
    client = client_as(request.getfixturevalue(persona))
    assert _post(client, _event()).status_code == status


def test_anonymous_is_401(doc_class):
    assert _post(APIClient(), _event()).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_identical_requests_enqueue_exactly_one_message(make_user):
    from controlplane.roles import Role

    workload_class = WorkloadClassFactory(slug="doc-jobs")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    user = make_user("burst-bot", Role.VIEWER)
    _t, raw = api_token_issue(actor=None, user=user, name="burst", scopes=["ingest:doc-jobs"])
    barrier = threading.Barrier(50)
    statuses, ids, lock = [], set(), threading.Lock()

    def send():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        barrier.wait()
        try:
            response = _post(client, _event())
            with lock:
                statuses.append(response.status_code)
                ids.add(response.json().get("message_id"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] * 49 + [202]
    assert len(ids) == 1
    assert len(_queued(workload_class)) == 1


def test_one_event_and_three_take_the_same_statements(doc_class):
    """One code path for one event and many: the keys are claimed by one statement per class and
    the events published by one publish, so three events cost the statements one does."""
    from django.test.utils import CaptureQueriesContext

    from workloads.services.ingestion import events_ingest

    statements = []
    for count in (1, 3):
        events = [_event(document_id=f"doc-{count}-{n}") for n in range(count)]
        with CaptureQueriesContext(connection) as queries:
            results = events_ingest(workload_class=doc_class, events=events, now=timezone.now())
        assert [r.status for r in results] == ["accepted"] * count
        # Each statement as its verb and first table (savepoint names differ from call to call).
        statements.append([(q["sql"].split(" ", 1)[0], re.findall(r'"workloads_\w+"', q["sql"])[:1]) for q in queries])
    assert statements[0] == statements[1]
    assert {r.key: r.message_id for r in IdempotencyRecord.objects.all()} == {
        m.attributes[ATTR_IDEMPOTENCY_KEY]: m.message_id for m in _queued(doc_class)
    }


def test_a_batch_with_taken_keys_publishes_the_new_events_and_answers_for_the_others(doc_class, producer):
    _post(producer, _event(document_id="old"))
    _post(producer, _event(document_id="conflict"))
    changed = {**_event(document_id="conflict"), "content_type": "text/plain"}  # same key, other payload
    batch = [_event(document_id="new-1"), _event(document_id="old"), changed, _event(document_id="new-2")]
    response = _post(producer, batch)
    assert response.status_code == 202, response.content
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "duplicate", "conflict", "accepted"]
    assert len(_queued(doc_class)) == 4  # old, conflict, new-1, new-2


def test_a_single_event_sent_again_gets_its_receipt_and_with_another_payload_a_conflict(doc_class, producer):
    first = _post(producer, _event())
    assert first.status_code == 202
    again = _post(producer, _event())
    assert again.status_code == 200 and again.json()["message_id"] == first.json()["message_id"]
    same_key = {"Idempotency-Key": first.json()["idempotency_key"]}
    assert _post(producer, _event(revision=2), **same_key).status_code == 422
    [queued] = _queued(doc_class)
    assert queued.message_id == first.json()["message_id"]
    assert IdempotencyRecord.objects.get().message_id == first.json()["message_id"]
