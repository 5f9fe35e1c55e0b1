"""Faults in the middle of a group commit (workloads/services/ingestion_groups.py), on the local
queue on PostgreSQL: nothing is lost and nothing is answered twice.

- The database drops the group leader's connection (pg_terminate_backend) inside the group's
  transaction: nothing of the group is kept, each request is retried alone on a new connection
  and accepted once.
- A process ingesting from four threads at once (so its requests group) is killed (SIGKILL)
  mid-way: every event it answered as accepted is queued once with the answered message id, and
  sending everything again answers those as duplicates with the same message ids.
"""

from __future__ import annotations

import signal
import sys
import threading

import pytest
from django.db import connection, connections
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from tests.hardening.test_fault_database import DropConnection
from tests.workloads.runtime.processes import Process, command_env
from workloads.models import IdempotencyRecord
from workloads.providers import get_providers
from workloads.providers.base import ATTR_IDEMPOTENCY_KEY
from workloads.providers.local.models import LocalMessage
from workloads.providers.specs import queue_spec
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


class DropInAGroup(DropConnection):
    """Drops the connection before the first message INSERT that carries more than one message:
    the publish of a group, whichever thread leads it."""

    def __call__(self, execute, sql, params, many, context):
        several = any(isinstance(values, list) and len(values) > 1 for values in params or ())
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
    threads = [threading.Thread(target=request, args=(name,)) for name in names]
    threads[0].start()
    _wait(lambda: group_committer._leading and not group_committer._waiting)
    for count, thread in enumerate(threads[1:], start=1):
        thread.start()
        _wait(lambda count=count: len(group_committer._waiting) == count)
    held.release()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(drop.fired for drop in drops) == 1  # the group of a, b and c lost its connection
    assert {name: outcomes[name].status for name in names} == dict.fromkeys(names, Status.ACCEPTED), outcomes
    queued = _queued_by_key()
    assert queued == {f"acme:{name}:1": [outcomes[name].message_id] for name in names}
    receipts = dict(IdempotencyRecord.objects.values_list("key", "message_id"))
    assert receipts == {f"acme:{name}:1": outcomes[name].message_id for name in names}
    for name in names:  # sent again: the same receipts
        [again] = events_ingest(workload_class=doc_class, events=[_event(name)], now=timezone.now())
        assert (again.status, again.message_id) == (Status.DUPLICATE, outcomes[name].message_id)


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
