"""The migration switch at ingestion: a plan's share of the events goes to the Worker Pool class
by a stable hash of the idempotency key, the rest to the old runtime (a Pub/Sub topic or a Celery
task), with no event lost or sent to both, and a key never changes side while the share grows."""

from __future__ import annotations

import shutil

import pytest
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from tests.hardening.test_fault_broker import ThrowawayRedis, _free_port
from workloads.providers import get_providers
from workloads.providers.celery import runtime_celery_app
from workloads.providers.local.models import LocalMessage
from workloads.providers.specs import queue_spec
from workloads.runtimes import route_bucket, routes_to_target
from workloads.services.ingestion import Status, events_ingest

EVENTS = 2000


def _document(n: int) -> dict:
    return {"tenant_id": "acme", "document_id": f"doc-{n}", "revision": 1}


def _classes(*, old_runtime: str = "cloud_run_service", resource: str = "docs-svc", percent: int = 20):
    old = WorkloadClassFactory(slug="docs-old", runtime=old_runtime, runtime_resource=resource)
    new = WorkloadClassFactory(slug="docs-pool")
    for wc in (old, new):
        get_providers().queue.ensure_resources(queue_spec(wc))
    old.route_to, old.route_percent = new, percent
    old.save(update_fields=["route_to", "route_percent"])
    return old, new


def _ingest(workload_class, numbers) -> list:
    results = []
    for start in range(0, len(numbers), 500):
        events = [_document(n) for n in numbers[start : start + 500]]
        results += events_ingest(workload_class=workload_class, events=events, now=timezone.now())
    return results


def _keys_on(workload_class) -> list[str]:
    rows = LocalMessage.objects.filter(topic__name=workload_class.topic).values_list("attributes", flat=True)
    return [attributes["cp-idempotency-key"] for attributes in rows]


def test_the_share_is_routed_by_key_with_nothing_lost_or_sent_twice(db):
    old, new = _classes(percent=20)
    results = _ingest(old, list(range(EVENTS)))
    assert {r.status for r in results} == {Status.ACCEPTED}
    kept, moved = _keys_on(old), _keys_on(new)
    assert len(kept) + len(moved) == EVENTS  # none lost
    assert not set(kept) & set(moved)  # none on both sides
    assert len(set(kept) | set(moved)) == EVENTS
    # 20 % of 2000: 400, binomial sd ~18; the hash is fixed, so this is one deterministic outcome.
    assert 340 <= len(moved) <= 460
    assert all(routes_to_target(key, 20) for key in moved)
    assert not any(routes_to_target(key, 20) for key in kept)
    # The routed events carry the Worker Pool class's name, for its workers.
    assert {
        a["cp-class"] for a in LocalMessage.objects.filter(topic__name=new.topic).values_list("attributes", flat=True)
    } == {"docs-pool"}


def test_a_key_is_deduplicated_across_both_sides(db):
    old, new = _classes(percent=50)
    _ingest(old, list(range(200)))
    again = _ingest(old, list(range(200)))
    assert {r.status for r in again} == {Status.DUPLICATE}
    assert len(_keys_on(old)) + len(_keys_on(new)) == 200


def test_a_key_keeps_its_side_while_the_share_grows():
    keys = [f"acme:doc-{n}:1" for n in range(5000)]
    for low, high in ((0, 20), (20, 50), (50, 100)):
        assert all(routes_to_target(k, high) for k in keys if routes_to_target(k, low))
    assert not any(routes_to_target(k, 0) for k in keys)
    assert all(routes_to_target(k, 100) for k in keys)
    assert route_bucket("acme:doc-1:1") == route_bucket("acme:doc-1:1")  # the same in every process


def test_without_a_plan_everything_stays_on_the_class(db):
    old, new = _classes(percent=0)
    _ingest(old, list(range(100)))
    assert len(_keys_on(old)) == 100 and not _keys_on(new)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_the_rest_goes_on_to_the_old_celery_task(db, tmp_path, settings):
    redis = ThrowawayRedis(_free_port(), tmp_path)
    redis.start()
    settings.RUNTIME_CELERY_BROKER_URL = redis.url
    settings.RUNTIME_CELERY_BROKER_TRANSPORT_OPTIONS = {}
    runtime_celery_app.cache_clear()
    try:
        old, new = _classes(old_runtime="celery", resource="legacy.process_document", percent=20)
        results = _ingest(old, list(range(500)))
        assert {r.status for r in results} == {Status.ACCEPTED}
        moved = _keys_on(new)
        assert not _keys_on(old)  # the Celery side has no topic traffic: its events are tasks
        assert redis.queue_length("celery") + len(moved) == 500
        assert 60 <= len(moved) <= 140
        # Receipts are the task ids on the Celery side and message ids on the pool side.
        assert len({r.message_id for r in results}) == 500
    finally:
        runtime_celery_app.cache_clear()
        redis.stop()
