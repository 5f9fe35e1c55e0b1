"""Stamps of API tokens and workload classes: one text per row of everything an ingestion request's
answer rests on, computed by the database with one SQL expression, so that a process may keep the
rows it read (workloads/services/ingestion_lookups.py) and re-check all of a group's in one
statement (`current_stamps`) instead of reading them again on every request.

- A token's stamp (`workloads.fastsql.tokens.token_select_sql`): its expiry, secret, scopes, its user, whether
  the user is active or a superuser, and the user's roles (groups and per-environment). A revoked
  or expired token has no row, so no stamp.
- A class's stamp: every column of its row, and whether it is paused (an open pool hold), which a
  class that sheds load while paused refuses ingestion on. A deleted class has no row.

Plain SQL for the reason given in workloads/fastsql/; the class is loaded through the ORM's own
converters (`instance_from_row`), as `WorkloadClass.objects.get()` loads it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import datetime

from django.db import connections, models

from workloads.fastsql.reads import column_converters, instance_from_row
from workloads.fastsql.tokens import token_select_sql, token_stamp_sql
from workloads.models import PoolHold, WorkloadClass
from workloads.models.incidents import OPEN_HOLD_STATES

_PLAIN_WORD = re.compile(r"^[a-z_]+$")


def _class_table(alias: str) -> str:
    return connections[alias].ops.quote_name(WorkloadClass._meta.db_table)


@functools.cache
def _paused_sql(alias: str) -> str:
    """1 when the class (the row of the class table in the statement) has an open pool hold, else 0."""
    quote = connections[alias].ops.quote_name
    assert all(_PLAIN_WORD.match(state) for state in OPEN_HOLD_STATES)  # written into the SQL as they are
    states = ", ".join(f"'{state}'" for state in OPEN_HOLD_STATES)
    holds = PoolHold._meta
    return (
        f"CASE WHEN EXISTS (SELECT 1 FROM {quote(holds.db_table)} h "
        f"WHERE h.{quote(holds.get_field('workload_class').column)} = {_class_table(alias)}.{quote('id')} "
        f"AND h.{quote(holds.get_field('state').column)} IN ({states})) THEN 1 ELSE 0 END"
    )


@functools.cache
def _class_stamp_sql(alias: str) -> str:
    connection = connections[alias]
    quote = connection.ops.quote_name
    table = _class_table(alias)
    paused = f"CAST({_paused_sql(alias)} AS TEXT)"
    if connection.vendor == "postgresql":
        # The whole row as text, hashed: a short statement (psycopg caches the parsing of
        # statements under 4 kB only, and a column list made this one longer).
        return f"md5(CAST({table} AS TEXT)) || '|' || {paused}"
    columns = [
        f"COALESCE(CAST({table}.{quote(field.column)} AS TEXT), '')" for field in WorkloadClass._meta.concrete_fields
    ]
    return " || '|' || ".join([*columns, paused])


@functools.cache
def _class_select_sql(alias: str, field: str) -> tuple[str, tuple[str, ...]]:
    attnames = tuple(f.attname for f in WorkloadClass._meta.concrete_fields)
    quote = connections[alias].ops.quote_name
    table = _class_table(alias)
    columns = ", ".join(
        f"{table}.{quote(column.target.column)}" for column, _ in column_converters(WorkloadClass, alias, attnames)
    )
    where = f"{table}.{quote(WorkloadClass._meta.get_field(field).column)} = %s"
    sql = f"SELECT {columns}, {_paused_sql(alias)}, {_class_stamp_sql(alias)} FROM {table} WHERE {where}"
    return sql, attnames


def class_with_stamp(field: str, value, *, using: str) -> tuple[models.Model, bool, str] | None:
    """The class whose `field` (slug or id) is `value`, loaded as the ORM loads it, whether it is
    paused, and its stamp; None when there is no such class. One query."""
    connection = connections[using]
    sql, attnames = _class_select_sql(connection.alias, field)
    with connection.cursor() as cursor:
        cursor.execute(sql, [WorkloadClass._meta.get_field(field).get_db_prep_value(value, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    workload_class = instance_from_row(WorkloadClass, connection, dict(zip(attnames, row[:-2], strict=True)))
    return workload_class, bool(row[-2]), row[-1]


# On PostgreSQL, up to this many ids are listed as placeholders (`id IN ($1, $2)`), more go as one
# array (`id = ANY($1)`). The statement is prepared (server-side binding, settings: DATABASES), and
# PostgreSQL keeps a generic plan only when it costs no more than planning each run: for an array
# it guesses ten ids per parameter, so the re-check of a token and a class was planned again on
# every request (0.4 ms of the backend's 0.55 ms). Listed ids are counted exactly, the generic
# plan wins, and a group re-checks with one of a few statement texts.
MAX_LISTED_IDS = 8


def _listed(connection, count: int) -> bool:
    return connection.vendor != "postgresql" or count <= MAX_LISTED_IDS


def _ids_condition(connection, column: str, count: int) -> str:
    if _listed(connection, count):
        return f"{column} IN ({', '.join(['%s'] * count)})"
    return f"{column} = ANY(%s)"  # one array parameter: one statement text whatever the count


def _ids_parameters(connection, ids: Sequence[int]) -> list:
    return list(ids) if _listed(connection, len(ids)) else [list(ids)]


def _ids_count(connection, ids: Sequence[int]) -> int:
    """The count `_check_sql` is built for: the ids' count when listed, else 1 (any number, one array)."""
    if not ids:
        return 0
    return len(ids) if _listed(connection, len(ids)) else MAX_LISTED_IDS + 1


@functools.cache
def _check_sql(alias: str, role_values: tuple[int, ...], tokens: int, classes: int) -> str:
    connection = connections[alias]
    quote = connection.ops.quote_name
    parts = []
    if tokens:
        where = (
            _ids_condition(connection, f"t.{quote('id')}", tokens)
            + f" AND (t.{quote('expires_at')} IS NULL OR t.{quote('expires_at')} > %s)"
        )
        inner = token_select_sql(alias, role_values, where)
        parts.append(
            f"SELECT 'token' AS kind, q.{quote('t_id')} AS id, {token_stamp_sql(alias)} AS stamp FROM ({inner}) q"
        )
    if classes:
        table = _class_table(alias)
        where = _ids_condition(connection, f"{table}.{quote('id')}", classes)
        parts.append(f"SELECT 'class', {table}.{quote('id')}, {_class_stamp_sql(alias)} FROM {table} WHERE {where}")
    return " UNION ALL ".join(parts)


def current_stamps(
    token_ids: Sequence[int],
    class_ids: Sequence[int],
    *,
    now: datetime,
    role_groups: Sequence[tuple[str, int]],
    using: str,
) -> dict[tuple[str, int], str]:
    """The stamps of these tokens and classes as they are now, by ("token", id) and ("class", id);
    a revoked, expired or deleted one is missing. One statement."""
    if not token_ids and not class_ids:
        return {}
    connection = connections[using]
    role_values = tuple(value for _name, value in role_groups)
    tokens, classes = _ids_count(connection, token_ids), _ids_count(connection, class_ids)
    params: list = []
    if token_ids:
        params += [name for name, _value in role_groups]
        params += _ids_parameters(connection, token_ids)
        params.append(connection.ops.adapt_datetimefield_value(now))
    if class_ids:
        params += _ids_parameters(connection, class_ids)
    with connection.cursor() as cursor:
        cursor.execute(_check_sql(connection.alias, role_values, tokens, classes), params)
        return {(kind, row_id): stamp for kind, row_id, stamp in cursor.fetchall()}
