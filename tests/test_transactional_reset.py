"""The reset after each transactional test (tests/transactional_reset.py) empties every table, as
Django's flush does, and falls back to the flush when it cannot."""

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from tests.transactional_reset import BIG_TABLE, empty_tables, tables_with_rows

pytestmark = pytest.mark.django_db(transaction=True)


def _rows_left() -> dict[str, bool]:
    return tables_with_rows(connection, connection.introspection.django_table_names(only_existing=True))


def test_small_tables_linked_by_foreign_keys_end_empty():
    group = Group.objects.create(name="reset-check")
    User.objects.create(username="reset-check").groups.add(group)
    assert {"auth_user", "auth_group", "auth_user_groups", "django_content_type"} <= set(_rows_left())

    assert empty_tables(connection)

    assert _rows_left() == {}


def test_a_big_table_is_truncated_with_the_rows_that_refer_to_it():
    group = Group.objects.create(name="reset-check")
    User.objects.bulk_create(User(username=f"reset-{number}") for number in range(BIG_TABLE + 1))
    User.objects.first().groups.add(group)
    assert _rows_left()["auth_user"] is True

    assert empty_tables(connection)

    assert _rows_left() == {}


def test_a_row_it_cannot_delete_leaves_everything_for_django_s_flush():
    user = User.objects.create(username="reset-check")
    with connection.cursor() as cursor:  # an immediate foreign key from a table that is no model's
        cursor.execute("CREATE TABLE reset_check_ref (user_id integer NOT NULL REFERENCES auth_user (id))")
        cursor.execute("INSERT INTO reset_check_ref VALUES (%s)", [user.pk])
    try:
        assert not empty_tables(connection)
        assert User.objects.filter(pk=user.pk).exists()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE reset_check_ref")
