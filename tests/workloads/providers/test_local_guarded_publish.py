"""LocalQueue.publish_guarded: a row of the caller's table and a message published in one statement,
or nothing at all when the row already exists (ingestion's single-event path on PostgreSQL)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from tests.workloads.providers.conftest import queue_spec
from workloads.models import IdempotencyRecord, LocalDelivery, LocalMessage
from workloads.providers.base import GuardColumn, GuardRow, OutboundMessage, ProviderError
from workloads.providers.local import LocalQueue

pytestmark = pytest.mark.django_db


def _key_row(workload_class, key: str) -> GuardRow:
    now = timezone.now()
    values = {
        "workload_class": workload_class.pk,
        "key": key,
        "payload_fingerprint": "f" * 64,
        "ordering_key": "",
        "trace_id": "t",
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
    }
    fields = {name: IdempotencyRecord._meta.get_field(name) for name in values}
    return GuardRow(
        table=IdempotencyRecord._meta.db_table,
        columns=tuple(
            GuardColumn(field.column, field.cast_db_type(connection), field.get_db_prep_save(values[name], connection))
            for name, field in fields.items()
        ),
        message_id_column="message_id",
    )


@pytest.fixture
def setup():
    queue = LocalQueue()
    spec = queue_spec()
    queue.ensure_resources(spec)
    return queue, spec, WorkloadClassFactory()


def test_the_row_the_message_and_one_delivery_per_subscription_in_one_statement(setup):
    queue, spec, workload_class = setup
    # A second subscription on the same topic: the message fans out to both, as a publish does.
    queue.ensure_resources(queue_spec(spec.slug, subscription=spec.subscription + "-audit"))
    message = OutboundMessage(b'{"a":1}', {"cp-class": "x"}, ordering_key="k")
    with CaptureQueriesContext(connection) as queries:
        message_id = queue.publish_guarded(spec, message, _key_row(workload_class, "key-1"))
    assert len(queries) == 1

    [record] = IdempotencyRecord.objects.all()
    assert record.key == "key-1" and record.message_id == message_id
    stored = LocalMessage.objects.get(pk=int(message_id))
    assert (bytes(stored.data), stored.attributes, stored.ordering_key) == (b'{"a":1}', {"cp-class": "x"}, "k")
    deliveries = LocalDelivery.objects.filter(message=stored)
    assert sorted(d.subscription.name for d in deliveries) == sorted([spec.subscription, spec.subscription + "-audit"])
    assert all(d.ordering_key == "k" and d.attempts == 0 and d.acked_at is None for d in deliveries)
    [received] = queue.pull(spec, max_messages=5, timeout=0)
    assert received.message_id == message_id and received.data == b'{"a":1}'


def test_a_row_that_exists_publishes_nothing(setup):
    queue, spec, workload_class = setup
    first = queue.publish_guarded(spec, OutboundMessage(b"1"), _key_row(workload_class, "key-1"))
    again = queue.publish_guarded(spec, OutboundMessage(b"2"), _key_row(workload_class, "key-1"))
    assert first is not None and again is None
    assert [bytes(m.data) for m in LocalMessage.objects.all()] == [b"1"]
    assert LocalDelivery.objects.count() == 1
    assert IdempotencyRecord.objects.get().message_id == first


def test_a_missing_topic_is_not_found_and_writes_nothing(setup):
    queue, _spec, workload_class = setup
    with pytest.raises(ProviderError) as raised:
        queue.publish_guarded(queue_spec(), OutboundMessage(b"1"), _key_row(workload_class, "key-1"))
    assert raised.value.code == "NOT_FOUND"
    assert not IdempotencyRecord.objects.exists() and not LocalMessage.objects.exists()


def test_bad_attributes_are_refused_before_anything_is_written(setup):
    queue, spec, workload_class = setup
    with pytest.raises(ProviderError):
        queue.publish_guarded(spec, OutboundMessage(b"1", {"n": 1}), _key_row(workload_class, "key-1"))
    assert not IdempotencyRecord.objects.exists() and not LocalMessage.objects.exists()


@pytest.mark.django_db(databases=["default", "contract_sqlite"])
def test_only_a_queue_in_the_applications_postgresql_database_offers_it():
    assert LocalQueue().supports_guarded_publish
    on_sqlite = LocalQueue(using="contract_sqlite")
    assert not on_sqlite.supports_guarded_publish
    with pytest.raises(NotImplementedError):
        on_sqlite.publish_guarded(queue_spec(), OutboundMessage(b"1"), GuardRow("t", (), "message_id"))
