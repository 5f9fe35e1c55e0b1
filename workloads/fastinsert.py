"""Lean multi-row INSERTs for the hot paths (ingestion's key claim, the local queue's publish), and
the matching multi-row UPDATE by primary key (a replay's chunk of rows and steps).

The ORM's `bulk_create` costs ~0.25 ms of Python per statement here whatever the row count (most
of a single-event request's time went to building such statements), and with `ignore_conflicts`
it cannot say which rows it inserted. `insert_rows` writes the same statement with each field's
own value adaptation, so PostgreSQL and SQLite get exactly what the ORM would send, in a fraction
of that, and can add `ON CONFLICT DO NOTHING` and `RETURNING` (PostgreSQL; SQLite >= 3.35). On
PostgreSQL several rows go in as one array per column (`unnest`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connections, models

# SQLite binds at most 32766 parameters per statement; PostgreSQL 65535.
MAX_PARAMETERS = 30000


def insert_rows(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence],
    *,
    using: str = "default",
    ignore_conflicts: bool = False,
    unique_fields: Sequence[str] = (),
    update_fields: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list[tuple]:
    """INSERT `rows` (values in the order of `fields`) into the model's table; returns the
    `returning` columns of the inserted rows, in insertion order (as `bulk_create` assumes).
    With `ignore_conflicts`, rows that hit a unique constraint are skipped and not returned; with
    `unique_fields` and `update_fields`, a row whose unique fields exist already updates those
    fields of it instead (an upsert, as `bulk_create(update_conflicts=True)`)."""
    connection = connections[using]
    quote = connection.ops.quote_name
    model_fields = [model._meta.get_field(name) for name in fields]
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(field.column) for field in model_fields)
    row_placeholder = "(" + ", ".join(["%s"] * len(model_fields)) + ")"
    suffix = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    if update_fields:
        unique = ", ".join(quote(model._meta.get_field(name).column) for name in unique_fields)
        updates = (quote(model._meta.get_field(name).column) for name in update_fields)
        suffix = f" ON CONFLICT ({unique}) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in updates)
    if returning:
        suffix += " RETURNING " + ", ".join(quote(model._meta.get_field(name).column) for name in returning)
    if connection.vendor == "postgresql" and len(rows) > 1:
        return _insert_unnest(connection, model_fields, rows, f"INSERT INTO {table} ({columns})", suffix, returning)
    rows_per_statement = max(1, MAX_PARAMETERS // len(model_fields))
    returned: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), rows_per_statement):
            chunk = rows[start : start + rows_per_statement]
            params = [
                field.get_db_prep_save(value, connection)
                for row in chunk
                for field, value in zip(model_fields, row, strict=True)
            ]
            values = ", ".join([row_placeholder] * len(chunk))
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {values}{suffix}", params)
            if returning:
                returned += [tuple(row) for row in cursor.fetchall()]
    return returned


def _insert_unnest(connection, model_fields, rows, insert, suffix, returning) -> list[tuple]:
    """PostgreSQL: one array per column, `INSERT ... SELECT * FROM unnest(...)`, as Django's own
    bulk_create does since 5.2. The statement's text is the same whatever the row count, so the
    driver converts it once and PostgreSQL plans it once (a VALUES list of 500 rows cost 16 ms of
    driver time per statement, re-splitting its 4,500 placeholders). Rows go in, and come back
    through RETURNING, in the arrays' order."""
    # Without the length (varchar, not varchar(255)): a cast would truncate where the INSERT fails.
    arrays = ", ".join(f"%s::{field.db_type(connection).split('(')[0]}[]" for field in model_fields)
    params = [_column(connection, field, [row[index] for row in rows]) for index, field in enumerate(model_fields)]
    with connection.cursor() as cursor:
        cursor.execute(f"{insert} SELECT * FROM unnest({arrays}){suffix}", params)
        return [tuple(row) for row in cursor.fetchall()] if returning else []


# PostgreSQL: values of these Python types go to the driver as they are for fields of these types:
# what each field's get_db_prep_save returns for them unchanged, minus its calls (seconds per
# 100k values: a poll upserts some 20 columns of 12,000 rollups).
_AS_IS = {
    "IntegerField": int,
    "BigIntegerField": int,
    "PositiveIntegerField": int,
    "PositiveBigIntegerField": int,
    "SmallIntegerField": int,
    "FloatField": float,
    "CharField": str,
    "TextField": str,
    "BooleanField": bool,
}


def _column(connection, field, values: list) -> list:
    """One column's values prepared as the field would, skipping the field for values it keeps as
    they are: None, the field's own Python type (an int in a FloatField is converted, as it must be:
    one array holds one type), and aware datetimes in a DateTimeField."""
    target = field.target_field if field.is_relation else field
    kind = target.get_internal_type()
    prepare = field.get_db_prep_save
    if kind == "DateTimeField":
        return [
            value
            if value is None or (type(value) is datetime and value.utcoffset() is not None)
            else prepare(value, connection)
            for value in values
        ]
    as_is = _AS_IS.get(kind)
    if as_is is None:
        return [prepare(value, connection) for value in values]
    return [value if value is None or type(value) is as_is else prepare(value, connection) for value in values]


def update_rows(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence],
    *,
    where: dict | None = None,
    using: str = "default",
) -> int:
    """UPDATE the model's rows by primary key: each of `rows` is (pk, one value per field), and
    only where the columns of `where` equal its values; returns how many rows were updated. The
    ORM's `bulk_update` builds a CASE per field with one WHEN per row (seconds of Python for 500
    rows of five fields); this is one statement on PostgreSQL (`UPDATE ... FROM unnest(...)`) and
    one prepared statement run per row on SQLite."""
    if not rows:
        return 0
    connection = connections[using]
    quote = connection.ops.quote_name
    pk = model._meta.pk
    model_fields = [pk] + [model._meta.get_field(name) for name in fields]
    table = quote(model._meta.db_table)
    params = [
        [field.get_db_prep_save(row[index], connection) for row in rows] for index, field in enumerate(model_fields)
    ]
    conditions = [(model._meta.get_field(name), value) for name, value in (where or {}).items()]
    condition = "".join(f" AND {table}.{quote(field.column)} = %s" for field, _ in conditions)
    condition_params = [field.get_db_prep_value(value, connection) for field, value in conditions]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{field.db_type(connection).split('(')[0]}[]" for field in model_fields)
            names = ", ".join(f"v{index}" for index in range(len(model_fields)))
            assignments = ", ".join(
                f"{quote(field.column)} = v.v{index}" for index, field in enumerate(model_fields) if index
            )
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM unnest({arrays}) AS v({names}) "
                f"WHERE {table}.{quote(pk.column)} = v.v0{condition}",
                params + condition_params,
            )
        else:
            assignments = ", ".join(f"{quote(field.column)} = %s" for field in model_fields[1:])
            cursor.executemany(
                f"UPDATE {table} SET {assignments} WHERE {table}.{quote(pk.column)} = %s{condition}",
                [list(values[1:]) + [values[0]] + condition_params for values in zip(*params, strict=True)],
            )
        return cursor.rowcount
