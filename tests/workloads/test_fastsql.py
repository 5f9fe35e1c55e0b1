"""workloads/fastsql/, the product's plain SQL for speed. It is pinned to the Django version its
statements were checked against, and what it writes is byte for byte what the ORM writes (the
tables read back with plain SQL after each way). insert_rows: in input order, with ON CONFLICT DO
NOTHING and RETURNING, on PostgreSQL (one array per column) and SQLite (a VALUES list);
update_rows: each row its own values, by primary key, with a condition, on both; both with
`json_parameter` (PostgreSQL: plain rows as one JSON document) store what the ORM stores; values_by_pks
reads what the ORM's values_list reads. (What its other reads load is compared with the ORM's in
test_class_lookup.py and test_token_lookup.py.)"""

from datetime import UTC, datetime, timedelta, timezone

import django
import pytest
from django.db import DataError, connections, transaction
from django.test.utils import CaptureQueriesContext

from tests.workloads.providers.conftest import ALIASES
from workloads.fastsql import CHECKED_WITH_DJANGO
from workloads.fastsql import writes as fastsql_writes
from workloads.fastsql.reads import get_by_field, instance_from_row, values_by_pks
from workloads.fastsql.writes import insert_rows, set_field_by_pk, update_rows
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


def test_the_statements_were_checked_against_the_django_version_in_use():
    # fastsql builds on Django's internals (field adaptation, the compiler's select list, the
    # converters). On an upgrade: run this module, test_class_lookup.py and test_token_lookup.py on
    # the new version, read Django's release notes for those internals, then move the constant.
    assert django.VERSION[:2] == CHECKED_WITH_DJANGO, (
        f"Django {django.__version__}: re-check workloads/fastsql/ (its docstring says how) and set "
        f"CHECKED_WITH_DJANGO to {django.VERSION[:2]}"
    )


DELIVERY_FIELDS = ("subscription", "message", "ordering_key", "published_at", "attempts", "visible_at")
DELIVERY_FIELDS += ("lease_token", "acked_at", "dead_lettered")


def _stored(alias, model, *, but=()) -> list[tuple]:
    """Every row of the model's table as the database holds it (every column but the id and those
    in `but`), read with plain SQL, so the comparison is of what was written, not of what the ORM
    makes of it."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    columns = [f.column for f in model._meta.concrete_fields if not f.primary_key and f.column not in but]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(map(quote, columns))} FROM {quote(model._meta.db_table)} "
            f"ORDER BY {quote(model._meta.pk.column)}"
        )
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cursor.fetchall()]


def _message_values(topic, count):
    later = AT + timedelta(microseconds=123456)
    return [
        (topic.pk, b"\x00\xffdata%d" % i, {"n": i, "text": "it's \u00e9", "nested": [None, True]}, f"k{i % 2}", later)
        for i in range(count)
    ]


def _delivery_values(subscription, message_ids):
    acked = AT + timedelta(seconds=5)
    return [
        (subscription.pk, pk, f"k{n % 2}", AT, n, AT, "tok" if n % 2 else "", acked if n % 3 else None, n % 2 == 1)
        for n, pk in enumerate(message_ids)
    ]


def _orm_instances(model, fields, rows):
    instances = []
    for row in rows:
        values = {}
        for name, value in zip(fields, row, strict=True):
            field = model._meta.get_field(name)
            values[field.attname] = value
        instances.append(model(**values))
    return instances


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("count", [1, 5])  # one row: a VALUES list everywhere; five: arrays on PostgreSQL
def test_insert_rows_writes_what_bulk_create_writes(alias, count):
    topic, subscription = _topic_and_subscription(alias)
    message_fields = ("topic", "data", "attributes", "ordering_key", "published_at")
    messages = _message_values(topic, count)

    LocalMessage.objects.using(alias).bulk_create(_orm_instances(LocalMessage, message_fields, messages))
    ids = list(LocalMessage.objects.using(alias).order_by("pk").values_list("pk", flat=True))
    LocalDelivery.objects.using(alias).bulk_create(
        _orm_instances(LocalDelivery, DELIVERY_FIELDS, _delivery_values(subscription, ids))
    )
    # The messages' ids differ between the two ways (the sequence moves on); the rest may not.
    by_orm = (_stored(alias, LocalMessage), _stored(alias, LocalDelivery, but=("message_id",)))
    LocalMessage.objects.using(alias).all().delete()

    returned = insert_rows(LocalMessage, message_fields, messages, using=alias, returning=("id",))
    insert_rows(LocalDelivery, DELIVERY_FIELDS, _delivery_values(subscription, [pk for (pk,) in returned]), using=alias)
    assert (_stored(alias, LocalMessage), _stored(alias, LocalDelivery, but=("message_id",))) == by_orm
    assert by_orm[0] and by_orm[1]


@pytest.mark.parametrize("alias", ALIASES)
def test_update_rows_and_set_field_by_pk_write_what_the_orm_writes(alias):
    topic, _subscription = _topic_and_subscription(alias)
    later = AT + timedelta(hours=1, microseconds=7)
    fields = ("data", "attributes", "published_at")

    def fresh():
        LocalMessage.objects.using(alias).all().delete()
        return [pk for pk, _key in _messages(alias, topic, 4)]

    ids = fresh()
    changes = [(pk, b"new\x00%d" % n, {"n": n, "q": "it's"}, later) for n, pk in enumerate(ids)]
    orm = list(LocalMessage.objects.using(alias).filter(pk__in=ids).order_by("pk"))
    for message, (_pk, data, attributes, published_at) in zip(orm, changes, strict=True):
        message.data, message.attributes, message.published_at = data, attributes, published_at
    LocalMessage.objects.using(alias).bulk_update(orm, fields)
    LocalMessage.objects.using(alias).filter(pk=ids[1]).update(ordering_key="set one")
    LocalMessage.objects.using(alias).filter(pk=ids[2]).update(ordering_key="set two")
    by_orm = _stored(alias, LocalMessage)

    ids = fresh()
    changes = [(pk, *change[1:]) for pk, change in zip(ids, changes, strict=True)]
    assert update_rows(LocalMessage, fields, changes, using=alias) == 4
    set_field_by_pk(LocalMessage, "ordering_key", [("set one", ids[1]), ("set two", ids[2])], using=alias)
    assert _stored(alias, LocalMessage) == by_orm


@pytest.mark.parametrize("alias", ALIASES)
def test_a_row_read_by_hand_loads_as_the_orm_loads_it(alias):
    topic, subscription = _topic_and_subscription(alias)
    [(message_id, _key)] = _messages(alias, topic, 1)
    insert_rows(LocalDelivery, DELIVERY_FIELDS, _delivery_values(subscription, [message_id] * 1), using=alias)
    expected = LocalDelivery.objects.using(alias).get()
    connection = connections[alias]
    quote = connection.ops.quote_name
    attnames = [field.attname for field in LocalDelivery._meta.concrete_fields]
    columns = [field.column for field in LocalDelivery._meta.concrete_fields]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(map(quote, columns))} FROM {quote(LocalDelivery._meta.db_table)}")
        row = cursor.fetchone()
    loaded = instance_from_row(LocalDelivery, connection, dict(zip(attnames, row, strict=True)))
    values = {name: getattr(loaded, name) for name in attnames}
    assert values == {name: getattr(expected, name) for name in attnames}
    assert {name: type(value) for name, value in values.items()} == {
        name: type(getattr(expected, name)) for name in attnames
    }
    by_field = get_by_field(LocalTopic, "name", topic.name, using=alias)
    assert (by_field.pk, by_field.name, by_field.created_at) == (topic.pk, topic.name, topic.created_at)
    assert get_by_field(LocalTopic, "name", "projects/p/topics/none", using=alias) is None


@pytest.mark.parametrize("alias", ALIASES)
def test_many_rows_go_through_copy_and_are_stored_as_bulk_create_stores_them(alias, monkeypatch):
    # From COPY_FROM_ROWS rows on, PostgreSQL takes them through COPY into a temporary table and
    # one INSERT ... SELECT (a threshold of 3 here, so five rows do): the same rows as the ORM's,
    # JSON, bytes, NULLs and microseconds included; upserts and too-long values behave the same.
    monkeypatch.setattr(fastsql_writes, "COPY_FROM_ROWS", 3)
    topic, subscription = _topic_and_subscription(alias)
    message_fields = ("topic", "data", "attributes", "ordering_key", "published_at")
    messages = _message_values(topic, 5) + [(topic.pk, b"", "a JSON string", "", AT), (topic.pk, b"", [1, "x"], "", AT)]
    LocalMessage.objects.using(alias).bulk_create(_orm_instances(LocalMessage, message_fields, messages))
    by_orm = _stored(alias, LocalMessage)
    LocalMessage.objects.using(alias).all().delete()

    assert insert_rows(LocalMessage, message_fields, messages, using=alias) == []
    assert _stored(alias, LocalMessage) == by_orm
    ids = list(LocalMessage.objects.using(alias).order_by("pk").values_list("pk", flat=True))
    assert [bytes(m.data) for m in LocalMessage.objects.using(alias).order_by("pk")] == [row[1] for row in messages]

    insert_rows(LocalDelivery, DELIVERY_FIELDS, _delivery_values(subscription, ids[:2]), using=alias)
    later = AT + timedelta(hours=1)
    rows = [(subscription.pk, pk, "new", later, 7, later, "", None, False) for pk in ids]
    insert_rows(
        LocalDelivery,
        DELIVERY_FIELDS,
        rows,
        using=alias,
        unique_fields=("subscription", "message"),
        update_fields=("attempts",),
    )
    stored = {d.message_id: d for d in LocalDelivery.objects.using(alias).all()}
    assert [(stored[pk].attempts, stored[pk].ordering_key) for pk in ids] == [(7, "k0"), (7, "k1")] + [(7, "new")] * 5
    # Twice in one transaction: the temporary table of the first call is gone.
    with transaction.atomic(using=alias):
        insert_rows(LocalDelivery, DELIVERY_FIELDS, rows, using=alias, ignore_conflicts=True)
        insert_rows(LocalDelivery, DELIVERY_FIELDS, rows, using=alias, ignore_conflicts=True)
    assert LocalDelivery.objects.using(alias).count() == 7
    if connections[alias].vendor == "postgresql":  # SQLite does not enforce varchar lengths
        too_long = [(topic.pk, b"", {}, "k" * 1025, AT)] + [(topic.pk, b"", {}, "k", AT)] * 3
        with pytest.raises(DataError):
            insert_rows(LocalMessage, message_fields, too_long, using=alias)


@pytest.mark.parametrize("alias", ALIASES)
def test_values_read_by_primary_keys_load_as_the_orms_values_list(alias):
    topic, _subscription = _topic_and_subscription(alias)
    ids = [pk for pk, _key in _messages(alias, topic, 5)]
    wanted = [ids[4], ids[0], ids[2], ids[3], 999_999]  # any order, and a key that matches no row
    fields = ("id", "topic_id", "data", "attributes", "ordering_key", "published_at")
    orm = LocalMessage.objects.using(alias).filter(pk__in=wanted, ordering_key="key-0").order_by("pk")
    expected = list(orm.values_list(*fields))
    read = values_by_pks(LocalMessage, fields, wanted, where={"ordering_key": "key-0"}, using=alias)
    assert [row[0] for row in read] == [ids[0], ids[2], ids[4]]  # by primary key, the condition held
    assert [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in read] == [
        tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in expected
    ]
    assert [[type(v) for v in row] for row in read] == [[type(v) for v in row] for row in expected]
    assert read[0][3] == {"n": "0", "nested": [0]}  # JSON loaded, not its text
    with transaction.atomic(using=alias):
        assert len(values_by_pks(LocalMessage, ("id",), ids, for_update=True, using=alias)) == 5
    assert values_by_pks(LocalMessage, fields, [], using=alias) == []


# Text a JSON document must carry exactly: quotes, a backslash, non-ASCII, a line separator, an emoji.
AWKWARD_TEXT = 'it\'s "q" \\ \u00e9\u2028\U0001f600'


def _plain_delivery_values(subscription, message_ids):
    """Deliveries: nothing but ints, text, booleans, NULL and aware datetimes (one not in UTC)."""
    in_berlin = (AT + timedelta(microseconds=654321)).astimezone(timezone(timedelta(hours=2)))
    return [
        (
            subscription.pk,
            pk,
            f"{AWKWARD_TEXT}{n}",
            in_berlin,
            n,
            AT,
            "" if n % 2 else "tok",
            None if n % 3 else AT,
            n % 2 == 0,
        )
        for n, pk in enumerate(message_ids)
    ]


def _sent_as_json(queries) -> bool:
    return any("jsonb_array_elements" in query["sql"] for query in queries)


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("count", [1, 5])
def test_rows_sent_as_one_json_parameter_are_stored_as_bulk_create_stores_them(alias, count):
    """`json_parameter`: on PostgreSQL plain rows go as one JSON document expanded in SQL; what is
    stored, and what RETURNING gives back in input order, is what bulk_create and the arrays give.
    Rows with bytes or a JSON document (the messages) keep the arrays; SQLite ignores the option."""
    topic, subscription = _topic_and_subscription(alias)
    message_fields = ("topic", "data", "attributes", "ordering_key", "published_at")
    ids = [
        pk
        for (pk,) in insert_rows(
            LocalMessage, message_fields, _message_values(topic, count), using=alias, returning=("id",)
        )
    ]
    values = _plain_delivery_values(subscription, ids)
    LocalDelivery.objects.using(alias).bulk_create(_orm_instances(LocalDelivery, DELIVERY_FIELDS, values))
    by_orm = _stored(alias, LocalDelivery)
    LocalDelivery.objects.using(alias).all().delete()

    with CaptureQueriesContext(connections[alias]) as queries:
        returned = insert_rows(
            LocalDelivery,
            DELIVERY_FIELDS,
            values,
            using=alias,
            returning=("message", "ordering_key"),
            json_parameter=True,
        )
    assert _stored(alias, LocalDelivery) == by_orm
    assert returned == [(pk, f"{AWKWARD_TEXT}{n}") for n, pk in enumerate(ids)]
    assert _sent_as_json(queries.captured_queries) == (alias == "default")

    # A conflicting row is skipped and not returned, as with the arrays.
    with CaptureQueriesContext(connections[alias]) as queries:
        again = insert_rows(
            LocalDelivery,
            DELIVERY_FIELDS,
            values,
            using=alias,
            ignore_conflicts=True,
            returning=("id",),
            json_parameter=True,
        )
        LocalMessage.objects.using(alias).all().delete()
        insert_rows(LocalMessage, message_fields, _message_values(topic, count), using=alias, json_parameter=True)
    assert again == []
    assert [("jsonb_array_elements" in q["sql"]) for q in queries.captured_queries if "INSERT" in q["sql"]] == [
        alias == "default",
        False,  # bytes and a JSON document: the arrays (or a VALUES list)
    ]


@pytest.mark.parametrize("alias", ALIASES)
def test_update_rows_with_one_json_parameter_writes_what_bulk_update_writes(alias):
    topic, subscription = _topic_and_subscription(alias)
    message_ids = [pk for pk, _key in _messages(alias, topic, 4)]
    fields = ("ordering_key", "published_at", "attempts", "acked_at", "dead_lettered")

    def fresh():
        LocalDelivery.objects.using(alias).all().delete()
        insert_rows(LocalDelivery, DELIVERY_FIELDS, _delivery_values(subscription, message_ids), using=alias)
        return list(LocalDelivery.objects.using(alias).order_by("pk"))

    changes = _plain_delivery_values(subscription, message_ids)
    orm = fresh()
    for delivery, change in zip(orm, changes, strict=True):
        delivery.ordering_key, delivery.published_at, delivery.attempts = change[2], change[3], change[4]
        delivery.acked_at, delivery.dead_lettered = change[7], change[8]
    # Rows 1 and 3 hold the lease token "tok": the condition below picks them of rows 1 to 3.
    LocalDelivery.objects.using(alias).bulk_update([orm[1], orm[3]], fields)
    by_orm = _stored(alias, LocalDelivery, but=("id",))

    rows = [(d.pk, c[2], c[3], c[4], c[7], c[8]) for d, c in zip(fresh(), changes, strict=True)]
    with CaptureQueriesContext(connections[alias]) as queries:
        updated = update_rows(
            LocalDelivery, fields, rows[1:], where={"lease_token": "tok"}, using=alias, json_parameter=True
        )
    assert updated == 2
    assert _stored(alias, LocalDelivery, but=("id",)) == by_orm
    assert _sent_as_json(queries.captured_queries) == (alias == "default")
