"""Group commit (workloads/services/ingestion_groups.py): requests waiting at one moment share one
claim-and-publish, and each still gets its own outcome. On the local queue (PostgreSQL) and on
Pub/Sub (the emulator).

A group is made for real: the first request (the leader) is held inside its claim by a row lock
another connection keeps on its key; the requests that arrive meanwhile wait, and when the lock
goes the next leader takes all of them as one group (the committer logs each group's size)."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest
from django.db import connection, connections
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from workloads.models import IdempotencyRecord
from workloads.providers import get_providers, set_providers
from workloads.providers.base import ATTR_IDEMPOTENCY_KEY, ProviderError, Providers
from workloads.providers.specs import queue_spec
from workloads.services.ingestion import Status, events_ingest
from workloads.services.ingestion_groups import group_committer

pytestmark = pytest.mark.django_db(transaction=True)


def _event(document_id: str, revision: int = 1) -> dict:
    return {"tenant_id": "acme", "document_id": document_id, "revision": revision}


@pytest.fixture(params=["local-postgres", pytest.param("gcp", marks=pytest.mark.emulator)])
def provider(request):
    if request.param == "gcp":
        from workloads.providers.gcp.pubsub import PubSubQueue
        from workloads.providers.local import build_local_providers

        publisher, subscriber, ordered_publisher = request.getfixturevalue("pubsub_clients")
        queue = PubSubQueue(publisher=publisher, ordered_publisher=ordered_publisher, subscriber=subscriber)
        local = build_local_providers()
        set_providers(Providers(queue=queue, pools=local.pools, metrics=local.metrics, name="gcp"))
    yield request.param
    set_providers(None)


@pytest.fixture
def doc_class(provider):
    workload_class = WorkloadClassFactory(slug=f"groups-{provider}")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    return workload_class


def _queued(workload_class) -> dict[str, list[str]]:
    """{idempotency key: [message ids]} of everything in the class's subscription."""
    queue, spec = get_providers().queue, queue_spec(workload_class)
    found: dict[str, list[str]] = {}
    for _attempt in range(5):  # Pub/Sub's pull may answer with part of the backlog
        messages = queue.pull(spec, max_messages=100, timeout=1.0)
        for message in messages:
            found.setdefault(message.attributes[ATTR_IDEMPOTENCY_KEY], []).append(message.message_id)
        if messages:
            queue.ack(spec, [m.ack_id for m in messages])
    return found


class KeyHeld:
    """Another connection inserts the idempotency record of `key` and keeps it uncommitted: a
    claim of that key waits on it until `release()` (a rollback: the key is free again)."""

    def __init__(self, workload_class, key: str):
        settings = connection.settings_dict
        self._holder = psycopg.connect(
            host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"]
        )
        now = timezone.now()
        self._holder.execute(
            "INSERT INTO workloads_idempotencyrecord (workload_class_id, key, payload_fingerprint, message_id,"
            " ordering_key, trace_id, created_at, expires_at) VALUES (%s, %s, '', '', '', '', %s, %s)",
            [workload_class.pk, key, now, now],
        )

    def release(self) -> None:
        self._holder.rollback()
        self._holder.close()


def _in_thread(outcomes: dict, name: str, workload_class, events: list) -> threading.Thread:
    def run():
        try:
            outcomes[name] = events_ingest(workload_class=workload_class, events=events, now=timezone.now())
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcomes[name] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=f"request-{name}")
    thread.start()
    return thread


def _wait_for_waiting(count: int) -> None:
    deadline = time.monotonic() + 30
    while len(group_committer._waiting) < count:
        assert time.monotonic() < deadline, f"{len(group_committer._waiting)} requests waiting, expected {count}"
        time.sleep(0.01)


def _grouped(requests: dict[str, tuple], caplog, *, sizes: list[int] | None = None) -> dict:
    """Run `requests` ({name: (class, events)}) behind a held leader; returns {name: results or
    exception} and checks the groups' sizes (default: the leader alone, then all of them at once)."""
    leader_class = next(iter(requests.values()))[0]
    held = KeyHeld(leader_class, "acme:leader:1")
    outcomes: dict = {}
    caplog.set_level(logging.DEBUG, logger="workloads.services.ingestion_groups")
    threads = [_in_thread(outcomes, "leader", leader_class, [_event("leader")])]
    deadline = time.monotonic() + 30
    while not group_committer._leading or group_committer._waiting:
        assert time.monotonic() < deadline, "the leader did not take its group"
        time.sleep(0.01)
    time.sleep(0.3)  # the leader is in its claim, waiting on the held row
    for name, (workload_class, events) in requests.items():
        threads.append(_in_thread(outcomes, name, workload_class, events))
        _wait_for_waiting(len(threads) - 1)
    held.release()
    for thread in threads:
        thread.join(timeout=60)
    ran = [record.args[0] for record in caplog.records if record.msg.startswith("group of")]
    assert ran == (sizes or [1, len(requests)])
    return outcomes


def test_each_request_of_a_group_gets_its_own_result(doc_class, caplog):
    [original] = events_ingest(workload_class=doc_class, events=[_event("old")], now=timezone.now())
    events_ingest(workload_class=doc_class, events=[_event("taken")], now=timezone.now())
    outcomes = _grouped(
        {
            "new": (doc_class, [_event("new")]),
            "duplicate": (doc_class, [_event("old")]),
            "conflict": (doc_class, [_event("taken") | {"note": "changed"}]),
            "batch": (doc_class, [_event("b-1"), _event("b-2"), {"tenant_id": "acme"}]),
        },
        caplog,
    )
    [new], [duplicate], [conflict] = outcomes["new"], outcomes["duplicate"], outcomes["conflict"]
    assert new.status == Status.ACCEPTED and new.message_id
    assert (duplicate.status, duplicate.message_id) == (Status.DUPLICATE, original.message_id)
    assert conflict.status == Status.CONFLICT
    assert [r.status for r in outcomes["batch"]] == [Status.ACCEPTED, Status.ACCEPTED, Status.REJECTED]
    [leader] = outcomes["leader"]
    assert leader.status == Status.ACCEPTED
    queued = _queued(doc_class)
    accepted = [new, leader, *outcomes["batch"][:2], original]
    assert {key: ids for key, ids in queued.items() if key != "acme:taken:1"} == {
        r.idempotency_key: [r.message_id] for r in accepted
    }
    receipts = dict(IdempotencyRecord.objects.values_list("key", "message_id"))
    assert all(receipts[r.idempotency_key] == r.message_id for r in accepted)


def test_the_same_key_twice_in_one_group_is_published_once(doc_class, caplog):
    outcomes = _grouped(
        {
            "first": (doc_class, [_event("twice")]),
            "second": (doc_class, [_event("twice")]),
            "changed": (doc_class, [_event("twice") | {"note": "changed"}]),
            "other": (doc_class, [_event("other")]),
        },
        caplog,
        # The leader; then first and other (second and changed wait, their key is first's); then
        # second, which finds first's receipt; then changed (its key is second's too).
        sizes=[1, 2, 1, 1],
    )
    [first], [second], [changed] = outcomes["first"], outcomes["second"], outcomes["changed"]
    assert first.status == Status.ACCEPTED
    assert (second.status, second.message_id) == (Status.DUPLICATE, first.message_id)
    assert changed.status == Status.CONFLICT
    assert _queued(doc_class)["acme:twice:1"] == [first.message_id]


def test_a_request_whose_publish_fails_fails_alone_and_gives_its_key_back(doc_class, provider, caplog):
    """A class whose topic does not exist: its request hears NOT_FOUND, its key is free again,
    and the other requests of the group are accepted."""
    missing = WorkloadClassFactory(slug=f"no-topic-{provider}")  # no ensure_resources: no topic
    outcomes = _grouped(
        {
            "before": (doc_class, [_event("before")]),
            "doomed": (missing, [_event("doomed")]),
            "after": (doc_class, [_event("after")]),
        },
        caplog,
    )
    assert isinstance(outcomes["doomed"], ProviderError) and outcomes["doomed"].code == "NOT_FOUND"
    assert outcomes["before"][0].status == outcomes["after"][0].status == Status.ACCEPTED
    assert not IdempotencyRecord.objects.filter(workload_class=missing).exists()
    queued = _queued(doc_class)
    assert queued["acme:before:1"] == [outcomes["before"][0].message_id]
    assert queued["acme:after:1"] == [outcomes["after"][0].message_id]


def test_inside_a_transaction_a_request_runs_alone_in_it(doc_class):
    """A caller's transaction is the request's: rolled back, nothing of it stays."""
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        [result] = events_ingest(workload_class=doc_class, events=[_event("rolled-back")], now=timezone.now())
        assert result.status == Status.ACCEPTED
        raise RuntimeError("the caller changes its mind")
    assert not IdempotencyRecord.objects.exists()
    if get_providers().queue.publish_joins_transaction:
        assert _queued(doc_class) == {}
