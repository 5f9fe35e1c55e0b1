"""The API token check in one plain-SQL query, for speed (the reason: workloads/fastsql/__init__.py)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections, models

from workloads.fastsql.reads import instance_from_row
from workloads.models import ApiToken, EnvironmentRole

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
