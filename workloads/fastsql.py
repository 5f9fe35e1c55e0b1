"""Plain SQL where the ORM's own Python, not the database, is what costs: every statement the
product writes or reads by hand for speed lives here, so there is one place to re-check them.

Why: on the hot paths (every ingested event, every API request, the local queue's publish, a
replay's chunk of rows) building the ORM's statements cost more than running them. `bulk_create`
took ~0.25 ms of Python per statement whatever its row count and cannot say which rows went in
with `ignore_conflicts`; `bulk_update` builds a CASE per field with one WHEN per row (seconds of
Python for 500 rows of five fields); a token lookup through the ORM took 0.9 ms against 0.1 ms
here, a class lookup 0.75-1.0 ms against 0.17-0.21 ms.

The rule that keeps them honest: values go out through each field's own adaptation
(`get_db_prep_save` / `get_db_prep_value`; on PostgreSQL, `insert_rows` and `update_rows` pass
as they are the values that adaptation would return unchanged) and come back through the ORM's
own converters (`ops.get_db_converters`, `Field.get_db_converters`, `Model.from_db`), and a
SELECT is the ORM's own compiled statement where it can be, so the database sees, and callers
get, exactly what the ORM would send and load. Those are Django internals: the statements were checked
against Django CHECKED_WITH_DJANGO, and tests/workloads/test_fastsql.py fails on any other
version until its comparisons with the ORM have been re-run there and the constant moved.

The local provider's own statements stay with it (the queue's topic lookup and publish in
workloads/providers/local/queue/publish.py, the metrics' raw reads of grouped rows in
workloads/providers/local/metrics.py): they work on the embedded cloud's tables, which only that
provider may import (.importlinter), and build on `insert_rows` or the ORM's compiled SQL. The
poll's fold of a provider's worker reports into minute rollups (`report_rollups_fold`, below) is
here: it takes the provider's SELECT as it is given (ReportRows), so no table of the provider's is
named here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from workloads.domain import histogram
from workloads.models import ApiToken, EnvironmentRole, MetricRollup, Resolution
from workloads.providers.base import ReportRows

# The Django version (major, minor) whose internals the statements below were checked against.
CHECKED_WITH_DJANGO = (5, 2)

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
    if connection.vendor == "postgresql" and len(rows) >= COPY_FROM_ROWS and not returning:
        return _insert_copy(connection, model, model_fields, rows, columns, suffix)
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
    if connection.vendor == "postgresql":
        params = [_column(connection, field, [row[index] for row in rows]) for index, field in enumerate(model_fields)]
    else:
        params = [
            [field.get_db_prep_save(row[index], connection) for row in rows] for index, field in enumerate(model_fields)
        ]
    condition, condition_params = _and_equal(model, table, where, connection)
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


def _and_equal(model: type[models.Model], table: str, where: dict | None, connection) -> tuple[str, list]:
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
    extra, extra_params = _and_equal(model, table, where, connection)
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


# --- the API token check -----------------------------------------------------------------------------
_TOKEN_FIELDS = ("id", "name", "user_id", "key_id", "secret_hash", "scopes", "expires_at", "last_used_at")
_USER_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")


@functools.cache
def token_select_sql(alias: str, role_values: tuple[int, ...], where: str) -> str:
    """The active tokens matching `where` (SQL on `t`, the token table), each row with its token
    and user fields (`_TOKEN_FIELDS`, `_USER_FIELDS`), the highest role value of the user's groups,
    the user's environment roles (`environment:role,...`) and a stamp: one text of everything the
    token's permission rests on (expiry, secret, scopes, user, active, superuser, roles). The token
    lookup and workloads/freshness.py's re-check compute the stamp with this one expression, so a
    token whose stamp is unchanged still allows what it allowed. Parameters: the role group names
    (`role_values`' order), then those of `where`."""
    user_model = get_user_model()
    connection = connections[alias]
    quote = connection.ops.quote_name
    group_link = user_model.groups.through._meta
    role_case = " ".join(f"WHEN %s THEN {int(role)}" for role in role_values)
    environment_roles = EnvironmentRole._meta
    environment = quote(environment_roles.get_field("environment").column)
    pair = f"CAST(er.{environment} AS TEXT) || ':' || er.{quote('role')}"
    # Ordered on PostgreSQL so the stamp is the same text whenever the roles are the same.
    if connection.vendor == "postgresql":
        aggregate = f"string_agg({pair}, ',' ORDER BY {pair})"
    else:
        aggregate = f"group_concat({pair}, ',')"
    columns = [f"t.{quote(field)} AS {quote('t_' + field)}" for field in _TOKEN_FIELDS]
    columns += [f"u.{quote(field)} AS {quote('u_' + field)}" for field in _USER_FIELDS]
    return f"""
        SELECT {", ".join(columns)},
               (SELECT MAX(CASE g.{quote("name")} {role_case} ELSE 0 END)
                  FROM {quote(group_link.db_table)} ug JOIN {quote(Group._meta.db_table)} g
                    ON g.{quote("id")} = ug.{quote("group_id")}
                 WHERE ug.{quote(group_link.get_field("user").column)} = u.{quote("id")}) AS group_role,
               (SELECT {aggregate}
                  FROM {quote(environment_roles.db_table)} er
                 WHERE er.{quote(environment_roles.get_field("user").column)} = u.{quote("id")}) AS environment_roles
          FROM {quote(ApiToken._meta.db_table)} t JOIN {quote(user_model._meta.db_table)} u
            ON u.{quote("id")} = t.{quote("user_id")}
         WHERE {where} AND t.{quote("revoked_at")} IS NULL
    """


def token_stamp_sql(alias: str) -> str:
    """The stamp of a row `q` of `token_select_sql` (see there)."""
    quote = connections[alias].ops.quote_name
    parts = [
        *(f"COALESCE(CAST(q.{quote('t_' + field)} AS TEXT), '')" for field in ("expires_at", "secret_hash", "scopes")),
        *(f"CAST(q.{quote('u_' + field)} AS TEXT)" for field in ("id", "is_active", "is_superuser")),
        "COALESCE(CAST(q.group_role AS TEXT), '')",
        "COALESCE(q.environment_roles, '')",
    ]
    return " || '|' || ".join(parts)


@functools.cache
def _active_token_sql(alias: str, role_values: tuple[int, ...]) -> str:
    """The query of `active_token_row`, built once per database (it only depends on table names)."""
    quote = connections[alias].ops.quote_name
    inner = token_select_sql(
        alias,
        role_values,
        f"t.{quote('key_id')} = %s AND (t.{quote('expires_at')} IS NULL OR t.{quote('expires_at')} > %s)",
    )
    stale = f"(q.{quote('t_last_used_at')} IS NULL OR q.{quote('t_last_used_at')} < %s)"
    return f"SELECT q.*, {token_stamp_sql(alias)}, {stale} FROM ({inner}) q"


def active_token_row(
    key_id: str, now: datetime, *, stale_before: datetime, role_groups: Sequence[tuple[str, int]], using: str
) -> tuple[models.Model, models.Model, int, dict[int, str], bool, str] | None:
    """The unrevoked, unexpired API token with this key id, its user, the highest role value of
    the user's groups (`role_groups`: group name -> role value; 0 for none), the user's roles by
    environment ({environment id: role name}, the overrides), whether the token's last use is
    older than `stale_before`, and its stamp (`token_select_sql`); None when there is no such
    token. One query, not the ORM's four (the environment roles were one more round trip on every
    API request); the fields not selected load on access, as with `only()`."""
    connection = connections[using]
    when = connection.ops.adapt_datetimefield_value
    sql = _active_token_sql(connection.alias, tuple(value for _name, value in role_groups))
    # In the statement's order: the staleness (outer SELECT), the role names, key id and expiry.
    params = [when(stale_before)] + [name for name, _value in role_groups] + [key_id, when(now)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    users_from = len(_TOKEN_FIELDS)
    token_values = dict(zip(_TOKEN_FIELDS, row[:users_from], strict=True))
    user_values = dict(zip(_USER_FIELDS, row[users_from : users_from + len(_USER_FIELDS)], strict=True))
    group_role, environment_roles, stamp, last_used_is_stale = row[-4:]
    token = instance_from_row(ApiToken, connection, token_values)
    user = instance_from_row(get_user_model(), connection, user_values)
    overrides = {
        int(environment): role
        for environment, role in (pair.split(":", 1) for pair in (environment_roles or "").split(",") if pair)
    }
    return token, user, group_role or 0, overrides, bool(last_used_is_stale), stamp


# --- worker reports folded into minute rollups -------------------------------------------------------
# Why here: the poll of the local provider on PostgreSQL turned 12,000 (class, minute) report sums into
# Points, then cells, then rows and counter gains in Python, about a second per tick; this folds a
# provider's ReportRows (workloads/providers/base.py) into the minute rollups, and works out the
# running counters' gains, in one statement where the rows are. It writes what the generic path of
# workloads/services/polling.py and counters.py writes, bit for bit
# (tests/workloads/test_report_fold_sql.py); a change to either must be made to both.
REPORT_COUNTERS = ("completed", "failed", "records", "tokens")
_REPORT_FOLD_COLUMNS = (*REPORT_COUNTERS, "latency_buckets", "latency_count", "latency_sum", "latency_good")
# Serializes the polls that fold in SQL: their counter gains come from the minutes as the fold's own
# statement saw them, so a second poll must not fold before the first one's rows are committed.
_REPORT_FOLD_LOCK = 0x726F6C6C7570  # "rollup"
_FOLD_WORK_MEM = "64MB"


@dataclass(frozen=True)
class FoldClass:
    """One class as the fold needs it. `latency_below` and `latency_share`: its latency SLO's
    threshold as histogram.count_below reads it (whole buckets below that index, plus that share of
    the bucket at it; None: no latency SLO, or no share). `newest_other`: its newest sample in the
    poll's other metrics. `per_record` and `per_1k_tokens`: its rates (None: no rates)."""

    class_id: int
    slug: str
    latency_below: int | None
    latency_share: float | None
    newest_other: datetime | None
    per_record: Decimal | None
    per_1k_tokens: Decimal | None


@dataclass
class FoldedClass:
    """What the fold wrote for one class and what its counters gained: the minutes written (their
    starts), its newest report step (capped at now), and the gains as counters_advance adds them
    (`latency_sum` None: no minute's histogram gained; `cost` None: no rates)."""

    class_id: int
    minutes: list[int]  # since the epoch (integers: 12,000 timestamps took 0.1 s to load)
    newest: datetime
    gains: dict[str, int]
    latency: list[int]
    latency_sum: float | None
    records_tokens_cost: Decimal | None


def _half_even_micro(amount: str) -> str:
    """`amount` (numeric) rounded to 6 places half to even, as Decimal.quantize rounds (PostgreSQL's
    round() takes halves away from zero)."""
    scaled = f"({amount}) * 1000000"
    return (
        f"CASE WHEN abs({scaled} - trunc({scaled})) = 0.5 AND mod(trunc({scaled}), 2) = 0 "
        f"THEN trunc({amount}, 6) ELSE round({amount}, 6) END"
    )


def report_rollups_fold(
    rows: ReportRows,
    classes: Sequence[FoldClass],
    *,
    buckets_from: datetime,
    buckets_to: datetime,
    step_seconds: int,
    now: datetime,
    fetched_at: datetime,
) -> list[FoldedClass]:
    """Upsert the minute rollups of `rows` (PostgreSQL; minutes in [buckets_from, buckets_to), each
    step's start, the steps aligned to whole minutes) for `classes`, setting the report columns,
    `fetched_at` and the age of the class's newest sample (this and its other metrics'), and
    return per class what was written and gained over the minutes' values before. Call it in the
    poll's transaction; it takes a transaction-level lock that serializes such polls."""
    connection = connections[rows.using]
    quote = connection.ops.quote_name
    buckets = range(histogram.BUCKETS)
    table = quote(MetricRollup._meta.db_table)
    b = [f"s.b{i}" for i in buckets]
    below = " ".join(f"WHEN {i} THEN {' + '.join(b[:i]) or '0'}" for i in buckets)
    at = "CASE c.latency_below " + " ".join(f"WHEN {i} THEN {b[i]}" for i in buckets) + " END"
    # histogram.count_below: float(the whole buckets' sum), plus the share of the bucket at the index.
    latency_good = (
        f"CASE WHEN c.latency_below IS NULL THEN 0.0 ELSE CAST(CASE c.latency_below {below} END AS float8)"
        f" + CASE WHEN c.latency_share IS NOT NULL AND {at} <> 0 THEN CAST({at} AS float8) * c.latency_share"
        " ELSE 0.0 END END"
    )
    params: list = [*rows.params]
    bucket_names = ", ".join(f"b{i}" for i in buckets)
    cells = f"""
        src (slug, step_end, {", ".join(REPORT_COUNTERS)}, latency_count, latency_sum, {bucket_names})
            AS MATERIALIZED ({rows.sql}),
        classes AS (
            SELECT * FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::float8[], %s::timestamptz[],
                                 %s::numeric[], %s::numeric[])
                AS c (class_id, slug, latency_below, latency_share, newest_other, per_record, per_1k_tokens)
        ),
        cells AS (
            SELECT c.class_id, s.step_end - make_interval(secs => %s) AS bucket, s.step_end,
                   {", ".join(f"COALESCE(s.{name}, 0) AS {name}" for name in REPORT_COUNTERS)},
                   COALESCE(s.latency_count, 0) AS latency_count, COALESCE(s.latency_sum, 0.0) AS latency_sum,
                   to_jsonb(ARRAY[{", ".join(b)}]) AS latency_buckets, {latency_good} AS latency_good,
                   {", ".join(b)}, c.per_record, c.per_1k_tokens
              FROM src s JOIN classes c ON c.slug = s.slug
             WHERE s.step_end - make_interval(secs => %s) >= %s AND s.step_end - make_interval(secs => %s) < %s
        ),
        newest AS (
            SELECT ce.class_id, GREATEST(MAX(c.newest_other), LEAST(MAX(ce.step_end), %s::timestamptz)) AS newest
              FROM cells ce JOIN classes c ON c.class_id = ce.class_id GROUP BY ce.class_id
        )"""
    params += [
        [c.class_id for c in classes],
        [c.slug for c in classes],
        [c.latency_below for c in classes],
        [c.latency_share for c in classes],
        [c.newest_other for c in classes],
        [c.per_record for c in classes],
        [c.per_1k_tokens for c in classes],
        step_seconds,
        step_seconds,
        buckets_from,
        step_seconds,
        buckets_to,
        now,
    ]
    # Every column of a new row: the report's, the poll's, and the model's defaults for the others.
    params.append(Resolution.MINUTE.value)  # the old minutes' (below, before the INSERT's)
    columns, values = [], []
    for field in MetricRollup._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(quote(field.column))
        if field.name == "workload_class":
            values.append("ce.class_id")
        elif field.name == "bucket_start":
            values.append("ce.bucket")
        elif field.name in _REPORT_FOLD_COLUMNS:
            values.append(f"ce.{field.column}")
        elif field.name == "newest_sample_age_seconds":
            values.append("GREATEST(0.0, CAST(EXTRACT(EPOCH FROM (%s::timestamptz - n.newest)) AS float8))")
            params.append(fetched_at)
        else:
            value = (
                Resolution.MINUTE if field.name == "resolution" else fetched_at if field.name == "fetched_at" else None
            )
            if value is None:
                value = field.get_default()
            # Typed: an INSERT ... SELECT does not take a bare parameter's type from its column.
            values.append(f"CAST(%s AS {field.db_type(connection)})")
            params.append(field.get_db_prep_save(value, connection))
    updates = ", ".join(
        f"{name} = EXCLUDED.{name}" for name in (*_REPORT_FOLD_COLUMNS, "fetched_at", "newest_sample_age_seconds")
    )
    gains = ", ".join(
        f"GREATEST(0, ce.b{i} - COALESCE(CAST(o.latency_buckets ->> {i} AS bigint), 0)) AS g{i}" for i in buckets
    )
    minute_gained = " + ".join(f"g.g{i}" for i in buckets)  # the minute's histogram gain
    records_cost = _half_even_micro("CAST(g.records AS numeric) * g.per_record")
    tokens_cost = _half_even_micro("CAST(g.tokens AS numeric) / 1000 * g.per_1k_tokens")
    sql = f"""
        WITH {cells},
        old AS (
            SELECT ce.class_id, ce.bucket, {", ".join(f"m.{name}" for name in REPORT_COUNTERS)},
                   m.latency_buckets, m.latency_sum
              FROM cells ce JOIN {table} m
                ON m.workload_class_id = ce.class_id AND m.resolution = %s AND m.bucket_start = ce.bucket
        ),
        written AS (
            INSERT INTO {table} ({", ".join(columns)})
            SELECT {", ".join(values)} FROM cells ce JOIN newest n ON n.class_id = ce.class_id
            ON CONFLICT (workload_class_id, resolution, bucket_start) DO UPDATE SET {updates}
        ),
        gains AS (
            SELECT ce.class_id, ce.bucket, ce.per_record, ce.per_1k_tokens,
                   {", ".join(f"GREATEST(0, ce.{name} - COALESCE(o.{name}, 0)) AS {name}" for name in REPORT_COUNTERS)},
                   ce.latency_sum - COALESCE(o.latency_sum, 0.0) AS latency_sum, {gains}
              FROM cells ce LEFT JOIN old o ON o.class_id = ce.class_id AND o.bucket = ce.bucket
        )
        SELECT g.class_id, array_agg(CAST(EXTRACT(EPOCH FROM g.bucket) AS bigint) / 60 ORDER BY g.bucket), n.newest,
               {", ".join(f"CAST(SUM(g.{name}) AS bigint)" for name in REPORT_COUNTERS)},
               ARRAY[{", ".join(f"CAST(SUM(g.g{i}) AS bigint)" for i in buckets)}],
               SUM(GREATEST(0.0, g.latency_sum) ORDER BY g.bucket) FILTER (WHERE {minute_gained} > 0),
               SUM(({records_cost}) + ({tokens_cost}))
          FROM gains g JOIN newest n ON n.class_id = g.class_id
         GROUP BY g.class_id, n.newest
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_REPORT_FOLD_LOCK])
        # The per-minute bucket sums of 12,000 minutes (41 each) and the gains' sort need some 10 MB:
        # with PostgreSQL's default 4 MB they spill to disk. Raised for this transaction only, and
        # never lowered below the server's own setting.
        cursor.execute(
            "SELECT set_config('work_mem', %s, true)"
            " WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(%s)",
            [_FOLD_WORK_MEM, _FOLD_WORK_MEM],
        )
        cursor.execute(sql, params)
        result = cursor.fetchall()
    return [
        FoldedClass(
            class_id=class_id,
            minutes=list(minutes),
            newest=newest,
            gains=dict(zip(REPORT_COUNTERS, counters, strict=True)),
            latency=list(latency),
            latency_sum=latency_sum,
            records_tokens_cost=cost,
        )
        for class_id, minutes, newest, *counters, latency, latency_sum, cost in result
    ]
