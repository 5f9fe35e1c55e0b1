"""LocalQueue.publish_guarded: rows of the caller's table and the messages they guard published in one
statement; a message whose row already exists is not published (ingestion's path on PostgreSQL)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from tests.workloads.providers.conftest import queue_spec
from workloads.models import IdempotencyRecord
from workloads.providers.base import GuardRows, OutboundMessage, ProviderError
from workloads.providers.local import LocalQueue
from workloads.providers.local.models import LocalDelivery, LocalMessage

pytestmark = pytest.mark.django_db

FIELDS = ("workload_class", "key", "payload_fingerprint", "ordering_key", "trace_id", "created_at", "expires_at")


def _key_rows(workload_class, *keys: str) -> GuardRows:
    now = timezone.now()
    fields = [IdempotencyRecord._meta.get_field(name) for name in FIELDS]

    def row(key):
        values = (workload_class.pk, key, "f" * 64, "", "t", now, now + timedelta(hours=1))
        return tuple(field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True))

    return GuardRows(
        table=IdempotencyRecord._meta.db_table,
        columns=tuple((field.column, field.db_type(connection).split("(")[0]) for field in fields),
        rows=tuple(row(key) for key in keys),
        message_id_column="message_id",
    )


@pytest.fixture
def setup():
    queue = LocalQueue()
    spec = queue_spec()
    queue.ensure_resources(spec)
    return queue, spec, WorkloadClassFactory()


def test_the_rows_the_messages_and_one_delivery_per_subscription_in_one_statement(setup):
    queue, spec, workload_class = setup
    # A second subscription on the same topic: the messages fan out to both, as a publish does.
    queue.ensure_resources(queue_spec(spec.slug, subscription=spec.subscription + "-audit"))
    messages = [OutboundMessage(b'{"a":1}', {"cp-class": "x"}, ordering_key="k"), OutboundMessage(b"2")]
    with CaptureQueriesContext(connection) as queries:
        ids = queue.publish_guarded(spec, messages, _key_rows(workload_class, "key-1", "key-2"))
    assert len(queries) == 1

    assert {r.key: r.message_id for r in IdempotencyRecord.objects.all()} == {"key-1": ids[0], "key-2": ids[1]}
    stored = LocalMessage.objects.get(pk=int(ids[0]))
    assert (bytes(stored.data), stored.attributes, stored.ordering_key) == (b'{"a":1}', {"cp-class": "x"}, "k")
    deliveries = LocalDelivery.objects.filter(message=stored)
    assert sorted(d.subscription.name for d in deliveries) == sorted([spec.subscription, spec.subscription + "-audit"])
    assert all(d.ordering_key == "k" and d.attempts == 0 and d.acked_at is None for d in deliveries)
    received = queue.pull(spec, max_messages=5, timeout=0)
    assert [(m.message_id, m.data) for m in received] == [(ids[0], b'{"a":1}'), (ids[1], b"2")]


def test_a_row_that_exists_keeps_its_message_from_being_published_and_the_rest_go_in_order(setup):
    queue, spec, workload_class = setup
    [first] = queue.publish_guarded(spec, [OutboundMessage(b"first")], _key_rows(workload_class, "b"))
    # Keys out of order, one taken: the others are published in input order (their ids rise).
    messages = [OutboundMessage(b"c"), OutboundMessage(b"again"), OutboundMessage(b"a")]
    ids = queue.publish_guarded(spec, messages, _key_rows(workload_class, "c", "b", "a"))
    assert ids[1] is None and int(ids[0]) < int(ids[2])
    assert [bytes(m.data) for m in LocalMessage.objects.order_by("pk")] == [b"first", b"c", b"a"]
    assert LocalDelivery.objects.count() == 3
    assert IdempotencyRecord.objects.get(key="b").message_id == first


def test_a_missing_topic_is_not_found_and_writes_nothing(setup):
    queue, _spec, workload_class = setup
    with pytest.raises(ProviderError) as raised:
        queue.publish_guarded(queue_spec(), [OutboundMessage(b"1")], _key_rows(workload_class, "key-1"))
    assert raised.value.code == "NOT_FOUND"
    assert not IdempotencyRecord.objects.exists() and not LocalMessage.objects.exists()


def test_bad_attributes_are_refused_before_anything_is_written(setup):
    queue, spec, workload_class = setup
    messages = [OutboundMessage(b"1"), OutboundMessage(b"2", {"n": 1})]
    with pytest.raises(ProviderError):
        queue.publish_guarded(spec, messages, _key_rows(workload_class, "key-1", "key-2"))
    assert not IdempotencyRecord.objects.exists() and not LocalMessage.objects.exists()


def test_every_message_needs_its_guard_row(setup):
    queue, spec, workload_class = setup
    with pytest.raises(ValueError, match="2 messages but 1 guard rows"):
        queue.publish_guarded(spec, [OutboundMessage(b"1"), OutboundMessage(b"2")], _key_rows(workload_class, "k"))


@pytest.mark.django_db(databases=["default", "contract_sqlite"])
def test_only_a_queue_in_the_applications_postgresql_database_offers_it():
    assert LocalQueue().supports_guarded_publish
    on_sqlite = LocalQueue(using="contract_sqlite")
    assert not on_sqlite.supports_guarded_publish
    with pytest.raises(NotImplementedError):
        on_sqlite.publish_guarded(queue_spec(), [OutboundMessage(b"1")], GuardRows("t", (), ((),), "message_id"))
