"""Model instances from rows read with plain SQL on the hot paths (the token behind every API call,
the class of every ingested event): converted exactly as the ORM converts what it reads, so JSON
comes back as Python objects, SQLite's 0/1 as booleans and its text as aware datetimes."""

from __future__ import annotations

import functools
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper


@functools.cache
def _converters(model: type[models.Model], alias: str, attnames: tuple[str, ...]) -> tuple:
    """Per field, in `attnames` order: (column expression, the backend's and the field's converters),
    the lists the ORM's compiler builds for a query, built once per model, database and field set.
    The converters keep no per-connection state; each call passes the calling thread's connection."""
    from django.db import connections

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
    loaded = []
    for attname, (column, converters) in zip(attnames, _converters(model, connection.alias, attnames), strict=True):
        value = values[attname]
        for convert in converters:
            value = convert(value, column, connection)
        loaded.append(value)
    return model.from_db(connection.alias, list(attnames), loaded)
