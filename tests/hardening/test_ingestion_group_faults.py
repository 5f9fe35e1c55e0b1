"""Faults in the middle of a group commit (workloads/services/ingestion_groups.py), on the local
queue on PostgreSQL: nothing is lost and nothing is answered twice.

- The database drops the group leader's connection (pg_terminate_backend) inside the group's
  transaction: nothing of the group is kept, each request is retried alone on a new connection
  and accepted once.
- A group holding both kinds of destination (a local-queue class, and a class running on Celery
  whose migration plan moves half of its keys to that local class) loses its connection after
  its local part committed, in the claim of its Celery part: the committed events are answered
  accepted once (not duplicates of themselves), the rest is retried alone and accepted, each
  event is queued or sent once.
- The same group with the Celery broker down: the local events are accepted, the Celery ones
  answer the broker's error (503) with their keys given back, and are accepted once it is back.
- The same group with the Celery broker hung (it accepts connections and never answers): every
  request of the group is answered within the publish deadline, the local ones accepted.
- A process ingesting from four threads at once (so its requests group) is killed (SIGKILL)
  mid-way: every event it answered as accepted is queued once with the answered message id, and
  sending everything again answers those as duplicates with the same message ids.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable

import pytest
import redis as redis_client
from django.db import connection, connections
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from tests.hardening.redis_cut_proxy import RedisCutProxy
from tests.hardening.test_fault_broker import ThrowawayRedis, _free_port
from tests.hardening.test_fault_database import DropConnection
from tests.workloads.runtime.processes import Process, command_env
from workloads.models import IdempotencyRecord
from workloads.providers import get_providers
from workloads.providers.base import ATTR_IDEMPOTENCY_KEY, ProviderError
from workloads.providers.celery import runtime_celery_app
from workloads.providers.local.models import LocalMessage
from workloads.providers.specs import queue_spec
from workloads.runtimes import routes_to_target
from workloads.services.ingestion import Status, events_ingest
from workloads.services.ingestion_groups import group_committer

pytestmark = pytest.mark.django_db(transaction=True)


def _event(document_id: str) -> dict:
    return {"tenant_id": "acme", "document_id": document_id, "revision": 1}


@pytest.fixture
def doc_class():
    workload_class = WorkloadClassFactory(slug="group-faults")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    return workload_class


def _rows_in(values) -> int:
    """How many messages one parameter of the publish carries: an array's elements, or the rows of
    the JSON document PostgreSQL's one-statement publish sends them in."""
    if isinstance(values, list):
        return len(values)
    if isinstance(values, str) and values.startswith("[["):
        return len(json.loads(values))
    return 0


class DropInAGroup(DropConnection):
    """Drops the connection before the first message INSERT that carries more than one message:
    the publish of a group, whichever thread leads it."""

    def __call__(self, execute, sql, params, many, context):
        several = any(_rows_in(values) > 1 for values in params or ())
        if self.sql in sql and not several:
            return execute(sql, params, many, context)
        return super().__call__(execute, sql, params, many, context)


def _queued_by_key() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for message in LocalMessage.objects.all():
        found.setdefault(message.attributes[ATTR_IDEMPOTENCY_KEY], []).append(str(message.pk))
    return found


def test_a_connection_dropped_mid_group_retries_each_request_alone(doc_class):
    from tests.workloads.test_ingestion_groups import KeyHeld

    held = KeyHeld(doc_class, "acme:leader:1")
    outcomes: dict[str, object] = {}
    drops: list[DropInAGroup] = []

    def request(name: str) -> None:
        drop = DropInAGroup('INSERT INTO "workloads_localmessage"', "before")
        drops.append(drop)
        try:
            with connection.execute_wrapper(drop):
                [outcomes[name]] = events_ingest(workload_class=doc_class, events=[_event(name)], now=timezone.now())
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcomes[name] = exc
        finally:
            connections.close_all()

    names = ["leader", "a", "b", "c"]
    _run_as_one_group(held, [threading.Thread(target=request, args=(name,)) for name in names])

    assert sum(drop.fired for drop in drops) == 1  # the group of a, b and c lost its connection
    assert {name: outcomes[name].status for name in names} == dict.fromkeys(names, Status.ACCEPTED), outcomes
    queued = _queued_by_key()
    assert queued == {f"acme:{name}:1": [outcomes[name].message_id] for name in names}
    receipts = dict(IdempotencyRecord.objects.values_list("key", "message_id"))
    assert receipts == {f"acme:{name}:1": outcomes[name].message_id for name in names}
    for name in names:  # sent again: the same receipts
        [again] = events_ingest(workload_class=doc_class, events=[_event(name)], now=timezone.now())
        assert (again.status, again.message_id) == (Status.DUPLICATE, outcomes[name].message_id)


class DropAfterTheLocalPart(DropConnection):
    """Drops the connection before the first key claim that follows a local-queue publish on this
    thread's connection: in a group holding both kinds, the claim of its networked part, once its
    local part (claims, messages, receipts) has committed."""

    def __init__(self):
        super().__init__('INSERT INTO "workloads_idempotencyrecord"', "before")
        self.published = False

    def __call__(self, execute, sql, params, many, context):
        if 'INSERT INTO "workloads_localmessage"' in sql:
            self.published = True
        if not self.published:
            return execute(sql, params, many, context)
        return super().__call__(execute, sql, params, many, context)


MIGRATED_PERCENT = 50


def _document_on(side: str, name: str) -> str:
    """A document id whose key the migration plan keeps on Celery (`kept`) or moves (`moved`)."""
    for n in range(1000):
        if routes_to_target(f"acme:{name}-{n}:1", MIGRATED_PERCENT) == (side == "moved"):
            return f"{name}-{n}"
    raise AssertionError("no such key")


@pytest.fixture
def runtime_broker(tmp_path, settings):
    """The Celery runtimes' broker: a throwaway Redis."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = ThrowawayRedis(_free_port(), tmp_path)
    server.start()
    settings.RUNTIME_CELERY_BROKER_URL = server.url
    settings.RUNTIME_CELERY_BROKER_TRANSPORT_OPTIONS = {}
    runtime_celery_app.cache_clear()
    yield server
    runtime_celery_app.cache_clear()
    server.stop()


@pytest.fixture
def legacy_class(doc_class, runtime_broker):
    """A class running on Celery whose migration plan moves half of its keys to `doc_class`."""
    legacy = WorkloadClassFactory(slug="legacy-docs", runtime="celery", runtime_resource="legacy.process_document")
    legacy.route_to, legacy.route_percent = doc_class, MIGRATED_PERCENT
    legacy.save(update_fields=["route_to", "route_percent"])
    return legacy


def _sent_tasks(server: ThrowawayRedis) -> dict[str, list[str]]:
    """{idempotency key: [task ids]} of the tasks waiting in the Celery broker."""
    found: dict[str, list[str]] = {}
    for raw in redis_client.Redis.from_url(server.url).lrange("celery", 0, -1):
        headers = json.loads(raw)["headers"]
        found.setdefault(headers["idempotency_key"], []).append(headers["id"])
    return found


def _mixed_group(doc_class, legacy_class, wrapper: Callable[[str], Callable]) -> dict[str, object]:
    """Behind a held leader, one group of three requests: `local` (the local class), `celery` (a key
    the plan keeps on Celery) and `mixed` (one key moved to the local class, one kept); `wrapper`
    makes each thread's execute wrapper. Returns {name: results or exception}."""
    from tests.workloads.test_ingestion_groups import KeyHeld

    requests = {
        "leader": (doc_class, [_event("leader")]),
        "local": (doc_class, [_event("local")]),
        "celery": (legacy_class, [_event(_document_on("kept", "celery"))]),
        "mixed": (legacy_class, [_event(_document_on("moved", "mixed")), _event(_document_on("kept", "mixed"))]),
    }
    held = KeyHeld(doc_class, "acme:leader:1")
    outcomes: dict[str, object] = {}

    def request(name: str) -> None:
        workload_class, events = requests[name]
        try:
            with connection.execute_wrapper(wrapper(name)):
                outcomes[name] = events_ingest(workload_class=workload_class, events=events, now=timezone.now())
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcomes[name] = exc
        finally:
            connections.close_all()

    _run_as_one_group(held, [threading.Thread(target=request, args=(name,)) for name in requests])
    return outcomes


def _answered(outcomes: dict) -> dict[str, str]:
    """{key: message id} of every event answered accepted."""
    return {
        result.idempotency_key: result.message_id
        for results in outcomes.values()
        if isinstance(results, list)
        for result in results
        if result.status == Status.ACCEPTED
    }


def test_a_group_of_local_and_celery_claims_keeps_what_committed_when_its_celery_part_fails(
    doc_class, legacy_class, runtime_broker
):
    wrappers: list[DropAfterTheLocalPart] = []

    def drop(_name):
        wrappers.append(DropAfterTheLocalPart())
        return wrappers[-1]

    outcomes = _mixed_group(doc_class, legacy_class, drop)

    assert sum(wrapper.fired for wrapper in wrappers) == 1  # the group's Celery claim lost its connection
    statuses = {name: [r.status for r in results] for name, results in outcomes.items() if isinstance(results, list)}
    # Every event is new: each is answered accepted, none as a duplicate of itself.
    assert statuses == {
        "leader": ["accepted"],
        "local": ["accepted"],
        "celery": ["accepted"],
        "mixed": ["accepted"] * 2,
    }, outcomes
    answered = _answered(outcomes)
    moved = {outcomes["mixed"][0].idempotency_key}
    local_keys = {"acme:leader:1", "acme:local:1"} | moved
    celery_keys = {outcomes["celery"][0].idempotency_key, outcomes["mixed"][1].idempotency_key}
    # Queued or sent once each, with the answered ids; the receipts are the same ids.
    assert _queued_by_key() == {key: [answered[key]] for key in local_keys}
    assert _sent_tasks(runtime_broker) == {key: [answered[key]] for key in celery_keys}
    assert dict(IdempotencyRecord.objects.values_list("key", "message_id")) == answered
    # Sent again: duplicates with the same receipts, nothing queued or sent twice.
    for name in ("local", "celery", "mixed"):
        workload_class = doc_class if name == "local" else legacy_class
        events = [_event(r.idempotency_key.split(":")[1]) for r in outcomes[name]]
        again = events_ingest(workload_class=workload_class, events=events, now=timezone.now())
        assert [(r.status, r.message_id) for r in again] == [(Status.DUPLICATE, r.message_id) for r in outcomes[name]]
    assert sum(len(ids) for ids in _sent_tasks(runtime_broker).values()) == 2


def test_a_group_of_local_and_celery_claims_with_the_broker_down(doc_class, legacy_class, runtime_broker):
    """The Celery send fails after the claims committed: no part of the group raises, each request
    hears its own outcome (the publish's error, not a group retry)."""
    runtime_broker.stop()
    outcomes = _mixed_group(doc_class, legacy_class, lambda _name: lambda execute, *args: execute(*args))

    assert [r.status for r in outcomes["leader"]] == [r.status for r in outcomes["local"]] == [Status.ACCEPTED]
    for name in ("celery", "mixed"):  # the mixed request's moved event is accepted, its kept one is not
        assert isinstance(outcomes[name], ProviderError) and outcomes[name].code == "UNAVAILABLE", outcomes[name]
    moved_key = f"acme:{_document_on('moved', 'mixed')}:1"
    local_keys = {"acme:leader:1", "acme:local:1", moved_key}
    queued = _queued_by_key()
    assert set(queued) == local_keys and all(len(ids) == 1 for ids in queued.values())
    # The kept events' keys were given back: only the local ones are recorded, with their receipts.
    assert dict(IdempotencyRecord.objects.values_list("key", "message_id")) == {
        key: ids[0] for key, ids in queued.items()
    }

    runtime_broker.start()  # back (empty): the retries are accepted once
    [celery] = events_ingest(
        workload_class=legacy_class, events=[_event(_document_on("kept", "celery"))], now=timezone.now()
    )
    moved, kept = events_ingest(
        workload_class=legacy_class,
        events=[_event(_document_on("moved", "mixed")), _event(_document_on("kept", "mixed"))],
        now=timezone.now(),
    )
    assert celery.status == kept.status == Status.ACCEPTED
    assert (moved.status, moved.message_id) == (Status.DUPLICATE, queued[moved_key][0])
    assert _sent_tasks(runtime_broker) == {
        celery.idempotency_key: [celery.message_id],
        kept.idempotency_key: [kept.message_id],
    }


@pytest.mark.timeout(60)  # without a deadline on the Celery send the group would wait forever
def test_a_group_of_local_and_celery_claims_with_the_broker_hung(doc_class, legacy_class, runtime_broker, settings):
    """One hung broker holds its group for the publish deadline, not longer: the requests for the
    local class are answered in time too."""
    proxy = RedisCutProxy(runtime_broker.port)
    settings.RUNTIME_CELERY_BROKER_URL = proxy.url
    settings.INGESTION_PUBLISH_TIMEOUT_SECONDS = publish_timeout = 2.0
    runtime_celery_app.cache_clear()
    proxy.hang()
    try:
        started = time.monotonic()
        outcomes = _mixed_group(doc_class, legacy_class, lambda _name: lambda execute, *args: execute(*args))
        elapsed = time.monotonic() - started
    finally:
        proxy.stop()

    assert elapsed < publish_timeout + 6.0, elapsed  # the margin: four requests' database work, busy machine
    assert [r.status for r in outcomes["leader"]] == [r.status for r in outcomes["local"]] == [Status.ACCEPTED]
    for name in ("celery", "mixed"):
        assert isinstance(outcomes[name], ProviderError) and outcomes[name].code == "UNAVAILABLE", outcomes[name]
    assert _sent_tasks(runtime_broker) == {}
    moved_key = f"acme:{_document_on('moved', 'mixed')}:1"
    assert set(IdempotencyRecord.objects.values_list("key", flat=True)) == {
        "acme:leader:1",
        "acme:local:1",
        moved_key,
    }


def _run_as_one_group(held, threads: list[threading.Thread]) -> None:
    """Start the first thread, which leads and waits on the `held` key, then the others one by one
    until each waits behind it, so that they form one group; release the key and join them all."""
    threads[0].start()
    _wait(lambda: group_committer._leading and not group_committer._waiting)
    for count, thread in enumerate(threads[1:], start=1):
        thread.start()
        _wait(lambda count=count: len(group_committer._waiting) == count)
    held.release()
    for thread in threads:
        thread.join(timeout=60)


def _wait(condition, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# Four threads ingest one event per request, as fast as they can, and print each answer.
PRODUCER = """
import sys, threading
import django
django.setup()
from django.utils import timezone
from workloads.models import WorkloadClass
from workloads.services.ingestion import events_ingest

workload_class = WorkloadClass.objects.get(slug=sys.argv[1])

def produce(thread):
    for n in range(100000):
        event = {"tenant_id": "acme", "document_id": f"doc-{thread}-{n}", "revision": 1}
        [result] = events_ingest(workload_class=workload_class, events=[event], now=timezone.now())
        sys.stdout.write(f"answered {thread} {n} {result.status} {result.message_id}\\n")
        sys.stdout.flush()

threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_a_killed_process_loses_nothing_it_answered_and_answers_nothing_twice(doc_class):
    producer = Process([doc_class.slug], command_env(), program=[sys.executable, "-c", PRODUCER])
    try:
        producer.wait_for_output("answered", times=60, timeout=120)
        producer.popen.send_signal(signal.SIGKILL)
        assert producer.popen.wait(timeout=10) == -signal.SIGKILL
    finally:
        producer.kill_all()
    answered: dict[str, str] = {}
    last: dict[int, int] = {}
    for line in list(producer.lines):
        if line.startswith("answered "):
            _word, thread, n, status, message_id = line.split(" ")
            assert status == Status.ACCEPTED, line
            answered[f"acme:doc-{thread}-{n}:1"] = message_id
            last[int(thread)] = max(last.get(int(thread), -1), int(n))
    assert len(answered) >= 60

    queued = _queued_by_key()
    assert all(len(ids) == 1 for ids in queued.values()), queued  # nothing published twice
    assert {key: queued[key][0] for key in answered} == answered  # nothing answered is lost
    receipts = dict(IdempotencyRecord.objects.values_list("key", "message_id"))
    assert {key: receipts[key] for key in answered} == answered

    # Everything sent again, including what was in flight when the process died (the next event
    # of each thread): the answered ones are duplicates with their message ids, the others are
    # accepted, or duplicates of what committed just before the kill; one message per key.
    for thread, n_last in last.items():
        for n in range(n_last + 2):
            key = f"acme:doc-{thread}-{n}:1"
            event = _event(f"doc-{thread}-{n}")
            [again] = events_ingest(workload_class=doc_class, events=[event], now=timezone.now())
            if key in answered:
                assert (again.status, again.message_id) == (Status.DUPLICATE, answered[key])
            else:
                assert again.status in (Status.ACCEPTED, Status.DUPLICATE) and again.message_id
    queued = _queued_by_key()
    assert all(len(ids) == 1 for ids in queued.values())
    receipts = dict(IdempotencyRecord.objects.values_list("key", "message_id"))
    assert {key: ids[0] for key, ids in queued.items()} == receipts
