"""Multi-row INSERT and UPDATE by hand, for speed (the reason: workloads/fastsql/__init__.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connections, models, transaction

# SQLite binds at most 32766 parameters per statement; PostgreSQL 65535.
MAX_PARAMETERS = 30000

# From this many rows on, `insert_rows` on PostgreSQL sends them with COPY into a temporary table
# (see _insert_copy); fewer go in one array per column, which costs less for a few rows (no table
# to create) but much more for thousands (the driver builds each array's text in Python).
COPY_FROM_ROWS = 1000


# --- writes ------------------------------------------------------------------------------------------


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
    json_parameter: bool = False,
) -> list[tuple]:
    """INSERT `rows` (values in the order of `fields`) into the model's table; returns the
    `returning` columns of the inserted rows, in insertion order (as `bulk_create` assumes).
    With `ignore_conflicts`, rows that hit a unique constraint are skipped and not returned; with
    `unique_fields` and `update_fields`, a row whose unique fields exist already updates those
    fields of it instead (an upsert, as `bulk_create(update_conflicts=True)`). `json_parameter`:
    on PostgreSQL, send the rows as one JSON parameter instead of one array (or one placeholder)
    per column, when every value is plain (see `_json_rows`); thousands of rows without
    `returning` still go by COPY."""
    connection = connections[using]
    model_fields, table, columns, row_placeholder, suffix = _insert_parts(
        using, model, tuple(fields), ignore_conflicts, tuple(unique_fields), tuple(update_fields), tuple(returning)
    )
    if connection.vendor == "postgresql" and len(rows) >= COPY_FROM_ROWS and not returning:
        return _insert_copy(connection, model, model_fields, rows, columns, suffix)
    if connection.vendor == "postgresql" and rows and json_parameter:
        document = _json_rows(connection, model_fields, rows)
        if document is not None:
            with connection.cursor() as cursor:
                cursor.execute(_insert_json_sql(using, table, columns, model_fields, suffix), [document])
                return [tuple(row) for row in cursor.fetchall()] if returning else []
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


@lru_cache(maxsize=256)
def _insert_parts(
    using: str,
    model: type[models.Model],
    fields: tuple[str, ...],
    ignore_conflicts: bool,
    unique_fields: tuple[str, ...],
    update_fields: tuple[str, ...],
    returning: tuple[str, ...],
) -> tuple[tuple, str, str, str, str]:
    """`insert_rows`' fields, table, column list, row placeholder and ON CONFLICT / RETURNING
    suffix, built once per statement shape: ingestion runs the same few shapes on every request,
    and building their text (field lookups, quoting) cost it as much as sending them."""
    quote = connections[using].ops.quote_name
    model_fields = tuple(model._meta.get_field(name) for name in fields)
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
    return model_fields, table, columns, row_placeholder, suffix


@lru_cache(maxsize=256)
def _insert_json_sql(using: str, table: str, columns: str, model_fields: tuple, suffix: str) -> str:
    values = ", ".join(_json_row_columns(using, model_fields, "input"))
    return f"INSERT INTO {table} ({columns}) SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS input(r){suffix}"


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


def _insert_copy(connection, model, model_fields, rows, columns, suffix) -> list:
    """PostgreSQL, many rows: COPY them into a temporary table shaped like the target's columns,
    then one `INSERT ... SELECT` from it with the same ON CONFLICT clause. COPY's rows are written
    by the driver's C code, where the arrays of _insert_unnest are built in Python (seconds for
    12,000 rollup rows of 26 columns); the values are prepared by the same _column. The temporary
    table has the target's column types (varchar lengths included: a value too long fails here
    as it would in the INSERT) and lives only inside this call's transaction or savepoint."""
    params = [
        _json_texts(connection, field, [row[index] for row in rows])
        if field.get_internal_type() == "JSONField"
        else _column(connection, field, [row[index] for row in rows])
        for index, field in enumerate(model_fields)
    ]
    table = connection.ops.quote_name(model._meta.db_table)
    scratch = connection.ops.quote_name(f"fastsql_copy_{model._meta.db_table}")
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {scratch} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA")
        # Django wraps execute()'s errors in its own (DataError, IntegrityError...), not COPY's.
        with connection.wrap_database_errors, cursor.copy(f"COPY {scratch} ({columns}) FROM STDIN") as copy:
            for values in zip(*params, strict=True):
                copy.write_row(values)
        cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {scratch}{suffix}")
        cursor.execute(f"DROP TABLE {scratch}")  # gone now: the caller's transaction may go on
    return []


def _json_texts(connection, field, values: list) -> list:
    """COPY: a JSONField's lists and dicts as the JSON text its adaptation would send (Django's
    `Jsonb(value, dumps=get_json_dumps(encoder))` dumps them with that function), without a
    wrapper per value for the driver to unwrap (a second per 36,000 values); anything else goes
    through the field's own get_db_prep_save (None stays SQL NULL)."""
    from django.db.backends.postgresql.operations import get_json_dumps

    dumps = get_json_dumps(field.encoder)
    prepare = field.get_db_prep_save
    return [dumps(value) if type(value) in (list, dict) else prepare(value, connection) for value in values]


# PostgreSQL: values of these Python types go to the driver as they are for fields of these types:
# what each field's get_db_prep_save returns for them unchanged, minus its calls (seconds per
# 100k values: a poll upserts some 20 columns of 12,000 rollups).
_AS_IS = {
    "AutoField": int,
    "BigAutoField": int,
    "SmallAutoField": int,
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


def _json_rows(connection, model_fields, rows) -> str | None:
    """PostgreSQL: the rows as one JSON array of arrays, for `jsonb_array_elements` to expand in
    the statement (`_json_row_columns`), or None when a column or a value is not plain.

    Why: psycopg adapts each array parameter in Python, element by element (a type lookup and a
    dumper per array, a dump per value): for ingestion's groups of a few rows that was most of the
    statements' own cost, where `json.dumps` writes the whole document in C. Only values whose JSON
    text PostgreSQL reads back as exactly the same value are sent this way: ints, text, booleans,
    NULL and aware datetimes (ISO 8601 with their offset, microseconds kept), each prepared by
    `_column` as the field would. Floats (NaN and infinities are not JSON), bytes, JSON documents
    and anything else keep the arrays."""
    kinds = _json_kinds(tuple(model_fields))
    if kinds is None:
        return None
    prepared = []
    for row in rows:
        values = []
        for field, kind, value in zip(model_fields, kinds, row, strict=True):
            # As `_column` prepares it: kept when None or already of the field's own type (aware,
            # for a datetime), else prepared by the field.
            if kind is datetime:
                kept = value is None or (type(value) is datetime and value.utcoffset() is not None)
            else:
                kept = value is None or type(value) is kind
            if not kept:
                value = field.get_db_prep_save(value, connection)
            if value is None or type(value) in (int, str, bool):
                values.append(value)
            elif type(value) is datetime and value.utcoffset() is not None:
                values.append(value)
            else:
                return None
        prepared.append(values)
    return json.dumps(prepared, default=datetime.isoformat, separators=(",", ":"))


@lru_cache(maxsize=256)
def _json_kinds(model_fields: tuple) -> tuple[type, ...] | None:
    """Per field, the Python type its plain values have (`datetime` for a DateTimeField); None
    when a field is not of a plain kind (see `_json_row_columns`)."""
    kinds = []
    for field in model_fields:
        kind = (field.target_field if field.is_relation else field).get_internal_type()
        if kind == "DateTimeField":
            kinds.append(datetime)
        elif _AS_IS.get(kind) in (int, str, bool):
            kinds.append(_AS_IS[kind])
        else:
            return None
    return tuple(kinds)


@lru_cache(maxsize=256)
def _json_row_columns(using: str, model_fields: tuple, alias: str) -> tuple[str, ...] | None:
    """Each column of a `_json_rows` row (`<alias>.r`) read as its field's type; None when a field
    is not of a plain kind. Cached: the fields' db_type cost more than the rest of the statement."""
    connection = connections[using]
    if _json_kinds(model_fields) is None:
        return None
    # Without the length (varchar, not varchar(255)): a cast would truncate where the INSERT fails.
    return tuple(
        f"({alias}.r->>{index})::{field.db_type(connection).split('(')[0]}" for index, field in enumerate(model_fields)
    )


def update_rows(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence],
    *,
    where: dict | None = None,
    using: str = "default",
    json_parameter: bool = False,
) -> int:
    """UPDATE the model's rows by primary key: each of `rows` is (pk, one value per field), and
    only where the columns of `where` equal its values; returns how many rows were updated. The
    ORM's `bulk_update` builds a CASE per field with one WHEN per row (seconds of Python for 500
    rows of five fields); this is one statement on PostgreSQL (`UPDATE ... FROM unnest(...)`) and
    one prepared statement run per row on SQLite. `json_parameter`: on PostgreSQL, the rows as one
    JSON parameter instead of one array per column, when every value is plain (see `_json_rows`)."""
    if not rows:
        return 0
    connection = connections[using]
    quote = connection.ops.quote_name
    pk = model._meta.pk
    model_fields = _update_fields(model, tuple(fields))
    table = quote(model._meta.db_table)
    postgresql = connection.vendor == "postgresql"
    document = _json_rows(connection, model_fields, rows) if json_parameter and postgresql else None
    if document is not None:
        params = []
    elif postgresql:
        params = [_column(connection, field, [row[index] for row in rows]) for index, field in enumerate(model_fields)]
    else:
        params = [
            [field.get_db_prep_save(row[index], connection) for row in rows] for index, field in enumerate(model_fields)
        ]
    condition, condition_params = and_equal_sql(model, table, where, connection)
    with connection.cursor() as cursor:
        if document is not None:
            cursor.execute(_update_json_sql(using, model_fields, table) + condition, [document] + condition_params)
        elif postgresql:
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


@lru_cache(maxsize=256)
def _update_fields(model: type[models.Model], fields: tuple[str, ...]) -> tuple:
    """The primary key, then the named fields: `update_rows`' columns, looked up once per shape."""
    return (model._meta.pk, *(model._meta.get_field(name) for name in fields))


@lru_cache(maxsize=256)
def _update_json_sql(using: str, model_fields: tuple, table: str) -> str:
    """`update_rows`' statement from one JSON parameter, without its `where` condition (built once
    per shape, as `_insert_parts`)."""
    quote = connections[using].ops.quote_name
    values = _json_row_columns(using, model_fields, "v")
    assignments = ", ".join(
        f"{quote(field.column)} = {value}" for field, value in zip(model_fields[1:], values[1:], strict=True)
    )
    return (
        f"UPDATE {table} SET {assignments} FROM jsonb_array_elements(%s::jsonb) AS v(r) "
        f"WHERE {table}.{quote(model_fields[0].column)} = {values[0]}"
    )


def and_equal_sql(model: type[models.Model], table: str, where: dict | None, connection) -> tuple[str, list]:
    """` AND <table>.<column> = %s` for each field of `where` ({name: value}), and its values."""
    quote = connection.ops.quote_name
    conditions = [(model._meta.get_field(name), value) for name, value in (where or {}).items()]
    sql = "".join(f" AND {table}.{quote(field.column)} = %s" for field, _ in conditions)
    return sql, [field.get_db_prep_value(value, connection) for field, value in conditions]


def set_field_by_pk(
    model: type[models.Model], field: str, values: Iterable[tuple[Any, Any]], *, using: str = "default"
) -> None:
    """Set one field of many rows, each to its own value: `values` is (value, pk) pairs. A plain
    UPDATE per row sent together (executemany pipelines them on PostgreSQL), instead of the ORM's
    CASE WHEN `bulk_update` that costs more to build than to run for a few rows."""
    connection = connections[using]
    quote = connection.ops.quote_name
    model_field = model._meta.get_field(field)
    sql = (
        f"UPDATE {quote(model._meta.db_table)} SET {quote(model_field.column)} = %s "
        f"WHERE {quote(model._meta.pk.column)} = %s"
    )
    params = [
        (model_field.get_db_prep_save(value, connection), model._meta.pk.get_db_prep_value(pk, connection))
        for value, pk in values
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
