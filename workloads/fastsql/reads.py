"""Rows read by hand and loaded as the ORM loads them, for speed (the reason: workloads/fastsql/__init__.py)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

from workloads.fastsql.writes import and_equal_sql


# --- reads -------------------------------------------------------------------------------------------
@functools.cache
def column_converters(model: type[models.Model], alias: str, attnames: tuple[str, ...]) -> tuple:
    """Per field, in `attnames` order: (column expression, the backend's and the field's converters),
    the lists the ORM's compiler builds for a query, built once per model, database and field set.
    The converters keep no per-connection state; each call passes the calling thread's connection."""
    connection = connections[alias]
    fields = {field.attname: field for field in model._meta.concrete_fields}
    result = []
    for attname in attnames:
        column = fields[attname].get_col(model._meta.db_table)
        result.append((column, connection.ops.get_db_converters(column) + column.get_db_converters(connection)))
    return tuple(result)


def instance_from_row(model: type[models.Model], connection: BaseDatabaseWrapper, values: dict[str, Any]):
    """An instance of `model` from {attname: value as the database returned it}, as the ORM would
    load it with `only(*values)`: the fields not given are deferred and load on access."""
    attnames = tuple(field.attname for field in model._meta.concrete_fields if field.attname in values)
    converting = _converting(column_converters(model, connection.alias, attnames))
    loaded = _convert([values[attname] for attname in attnames], converting, connection)
    return model.from_db(connection.alias, list(attnames), loaded)


def _converting(converters: tuple) -> list[tuple[int, Any, list]]:
    """(index, column, converters) of the `column_converters` entries that have any to apply."""
    return [(index, column, found) for index, (column, found) in enumerate(converters) if found]


def _convert(values: list, converting: list, connection: BaseDatabaseWrapper) -> list:
    """`values` (one row as the database returned it) loaded as the ORM loads them; in place."""
    for index, column, found in converting:
        value = values[index]
        for convert in found:
            value = convert(value, column, connection)
        values[index] = value
    return values


@functools.cache
def _filter_sql(model: type[models.Model], alias: str, field: str) -> tuple[str, tuple[str, ...]]:
    """The ORM's own SELECT for `filter(<field>=...)` and the fields it reads, compiled once per
    model, database and field."""
    compiler = model._default_manager.using(alias).filter(**{field: ""}).order_by().query.get_compiler(alias)
    sql, _ = compiler.as_sql()
    return sql, tuple(column.target.attname for column, _, _ in compiler.select)


def get_by_field(model: type[models.Model], field: str, value: Any, *, using: str) -> models.Model | None:
    """The row whose `field` (a unique one) equals `value`, loaded exactly as
    `model.objects.get(<field>=value)` would load it, or None; the query is compiled once."""
    connection = connections[using]
    sql, attnames = _filter_sql(model, connection.alias, field)
    with connection.cursor() as cursor:
        cursor.execute(sql, [model._meta.get_field(field).get_db_prep_value(value, connection)])
        row = cursor.fetchone()
    return None if row is None else instance_from_row(model, connection, dict(zip(attnames, row, strict=True)))


def values_by_pks(
    model: type[models.Model],
    attnames: Sequence[str],
    pks: Sequence,
    *,
    where: dict | None = None,
    for_update: bool = False,
    using: str = "default",
) -> list[tuple]:
    """The `attnames` of the rows whose primary key is in `pks` (and whose `where` columns equal
    its values), as tuples of values loaded as the ORM loads them (through its converters: JSON
    parsed, ...), ordered by primary key (so two transactions that lock rows take them in the
    same order). On PostgreSQL the keys go as one array (`= ANY(%s)`): the ORM's `pk__in` sends
    one placeholder per key, and for 500 keys parsing and planning that list cost more than
    reading the rows. `for_update` locks them (FOR UPDATE)."""
    connection = connections[using]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    converters = column_converters(model, connection.alias, tuple(attnames))
    columns = ", ".join(f"{table}.{quote(column.target.column)}" for column, _ in converters)
    pk = model._meta.pk
    keys = [pk.get_db_prep_value(value, connection) for value in pks]
    if not keys:
        return []
    if connection.vendor == "postgresql":
        condition, params = f"{table}.{quote(pk.column)} = ANY(%s)", [keys]
    else:
        condition, params = f"{table}.{quote(pk.column)} IN ({', '.join(['%s'] * len(keys))})", list(keys)
    extra, extra_params = and_equal_sql(model, table, where, connection)
    condition, params = condition + extra, params + extra_params
    lock = " FOR UPDATE" if for_update and connection.features.has_select_for_update else ""
    sql = f"SELECT {columns} FROM {table} WHERE {condition} ORDER BY {table}.{quote(pk.column)}{lock}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    converting = _converting(converters)
    if not converting:
        return [tuple(row) for row in rows]
    return [tuple(_convert(list(row), converting, connection)) for row in rows]
