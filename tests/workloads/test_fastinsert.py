"""insert_rows: what the ORM would insert, in input order, with ON CONFLICT DO NOTHING and RETURNING,
on PostgreSQL (one array per column) and SQLite (a VALUES list); update_rows: each row its own
values, by primary key, with a condition, on both."""

from datetime import UTC, datetime

import pytest
from django.db import DataError, connections

from tests.workloads.providers.conftest import ALIASES
from workloads.fastinsert import insert_rows, update_rows
from workloads.providers.local.models import LocalDelivery, LocalMessage, LocalSubscription, LocalTopic

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _topic_and_subscription(alias):
    topic = LocalTopic.objects.using(alias).create(name="projects/p/topics/t", created_at=AT)
    subscription = LocalSubscription.objects.using(alias).create(
        name="projects/p/subscriptions/s", topic=topic, created_at=AT, updated_at=AT
    )
    return topic, subscription


def _messages(alias, topic, count):
    rows = [(topic.pk, b"\x00data%d" % i, {"n": str(i), "nested": [i]}, f"key-{i % 2}", AT) for i in range(count)]
    return insert_rows(
        LocalMessage,
        ("topic", "data", "attributes", "ordering_key", "published_at"),
        rows,
        using=alias,
        returning=("id", "ordering_key"),
    )


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("count", [1, 3, 600])
def test_rows_are_stored_as_the_orm_reads_them_and_return_in_input_order(alias, count):
    topic, _subscription = _topic_and_subscription(alias)
    returned = _messages(alias, topic, count)
    assert [key for _id, key in returned] == [f"key-{i % 2}" for i in range(count)]
    stored = {m.pk: m for m in LocalMessage.objects.using(alias).all()}
    for index, (pk, _key) in enumerate(returned):
        message = stored[pk]
        assert bytes(message.data) == b"\x00data%d" % index
        assert message.attributes == {"n": str(index), "nested": [index]}
        assert message.published_at == AT and message.topic_id == topic.pk
    assert [pk for pk, _key in returned] == sorted(stored)  # ids in input order: the publish order


@pytest.mark.parametrize("alias", ALIASES)
def test_conflicting_rows_are_skipped_and_not_returned(alias):
    topic, subscription = _topic_and_subscription(alias)
    message_ids = [pk for pk, _key in _messages(alias, topic, 4)]
    fields = ("subscription", "message", "ordering_key", "published_at", "attempts", "visible_at")
    fields += ("lease_token", "acked_at", "dead_lettered")

    def deliveries(ids):
        return [(subscription.pk, pk, "", AT, 0, AT, "", None, False) for pk in ids]

    insert_rows(LocalDelivery, fields, deliveries(message_ids[1:3]), using=alias)
    inserted = insert_rows(
        LocalDelivery, fields, deliveries(message_ids), using=alias, ignore_conflicts=True, returning=("message",)
    )
    assert inserted == [(message_ids[0],), (message_ids[3],)]
    assert LocalDelivery.objects.using(alias).count() == 4
    assert not LocalDelivery.objects.using(alias).filter(acked_at__isnull=False).exists()


@pytest.mark.parametrize("alias", ALIASES[:1])  # PostgreSQL: SQLite does not enforce varchar lengths
def test_a_value_longer_than_its_column_fails_instead_of_being_cut(alias):
    assert connections[alias].vendor == "postgresql"
    topic, _subscription = _topic_and_subscription(alias)
    rows = [(topic.pk, b"", {}, "k" * 1025, AT), (topic.pk, b"", {}, "k", AT)]
    with pytest.raises(DataError):
        insert_rows(LocalMessage, ("topic", "data", "attributes", "ordering_key", "published_at"), rows, using=alias)


@pytest.mark.parametrize("alias", ALIASES)
def test_update_rows_gives_each_row_its_own_values_where_the_condition_holds(alias):
    topic, _subscription = _topic_and_subscription(alias)
    ids = [pk for pk, _key in _messages(alias, topic, 4)]
    LocalMessage.objects.using(alias).filter(pk=ids[3]).update(ordering_key="taken")
    later = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    rows = [(pk, b"new\x00%d" % n, {"n": n, "quote": "it's"}, later) for n, pk in enumerate(ids)]
    fields = ("data", "attributes", "published_at")
    updated = update_rows(LocalMessage, fields, rows[1:], where={"ordering_key": "key-1"}, using=alias)
    assert updated == 1  # ids[1]; ids[2] has key-0, ids[3] was taken
    stored = {m.pk: m for m in LocalMessage.objects.using(alias).all()}
    assert bytes(stored[ids[1]].data) == b"new\x001" and stored[ids[1]].attributes == {"n": 1, "quote": "it's"}
    assert stored[ids[1]].published_at == later
    assert all(stored[pk].published_at == AT for pk in (ids[0], ids[2], ids[3]))
    assert update_rows(LocalMessage, fields, rows, using=alias) == 4
    assert [bytes(stored.data) for stored in LocalMessage.objects.using(alias).order_by("pk")] == [
        b"new\x00%d" % n for n in range(4)
    ]
    assert update_rows(LocalMessage, fields, [], using=alias) == 0


@pytest.mark.parametrize("alias", ALIASES)
def test_an_upsert_updates_only_the_named_fields_of_existing_rows(alias):
    topic, subscription = _topic_and_subscription(alias)
    message_ids = [pk for pk, _key in _messages(alias, topic, 3)]
    fields = ("subscription", "message", "ordering_key", "published_at", "attempts", "visible_at")
    fields += ("lease_token", "acked_at", "dead_lettered")
    insert_rows(
        LocalDelivery, fields, [(subscription.pk, message_ids[0], "old", AT, 1, AT, "", None, False)], using=alias
    )
    later = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    rows = [(subscription.pk, pk, "new", later, 7, later, "", None, False) for pk in message_ids[:2]]
    insert_rows(
        LocalDelivery, fields, rows, using=alias, unique_fields=("subscription", "message"), update_fields=("attempts",)
    )
    stored = {d.message_id: d for d in LocalDelivery.objects.using(alias).all()}
    assert set(stored) == set(message_ids[:2])
    # The existing row takes only the updated field; the new one is inserted whole.
    assert (stored[message_ids[0]].attempts, stored[message_ids[0]].ordering_key) == (7, "old")
    assert (stored[message_ids[1]].attempts, stored[message_ids[1]].ordering_key) == (7, "new")
