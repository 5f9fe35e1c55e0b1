"""Issue, revoke and check API tokens. The secret exists in plain text only in the return value
of `api_token_issue`; the database keeps its SHA-256."""

import functools
import hmac
import re
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connections, router, transaction
from django.utils import timezone

from controlplane.roles import ASSIGNABLE_ROLES, Role, cache_role
from workloads.fastload import instance_from_row
from workloads.models import ApiToken
from workloads.models.tokens import hash_secret
from workloads.services.audit import audit_event_record

# "*": everything the token's user may do; "read": GET only; "ingest:<slug>" / "ingest:*": only
# the ingestion endpoint of those classes (for producers that should not read the registry);
# "deploy:<slug>" / "deploy:*": only recording deployments of those classes (for CI systems).
SCOPE_PATTERN = re.compile(r"^(\*|read|(ingest|deploy):(\*|[a-z][a-z0-9-]{1,46}[a-z0-9]))$")
LAST_USED_RESOLUTION = timedelta(minutes=1)
_NO_TOKEN_HASH = hash_secret("no such token")


def validate_scopes(scopes) -> list[str]:
    if scopes in (None, []):
        return ["*"]
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ValidationError({"scopes": "Scopes must be a list of strings."})
    bad = [s for s in scopes if not SCOPE_PATTERN.match(s)]
    if bad:
        raise ValidationError(
            {
                "scopes": f"Unknown scope(s) {', '.join(bad)}: use '*', 'read', 'ingest:*', "
                "'ingest:<class-slug>', 'deploy:*' or 'deploy:<class-slug>'."
            }
        )
    return sorted(set(scopes))


@transaction.atomic
def api_token_issue(
    *, actor, user, name: str, scopes: list[str] | None = None, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token acting as `user`; returns the row and the token text, shown only once."""
    if not name or not name.strip():
        raise ValidationError({"name": "Give the token a name that says what it is for."})
    if not user.is_active:
        raise ValidationError({"user": f"User {user.get_username()} is inactive."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    scopes = validate_scopes(scopes)
    key_id, secret = ApiToken.new_key_pair()
    token = ApiToken.objects.create(
        name=name.strip()[:100],
        user=user,
        key_id=key_id,
        secret_hash=hash_secret(secret),
        scopes=scopes,
        created_by=actor if actor is not None and actor.pk else None,
        expires_at=expires_at,
    )
    audit_event_record(
        actor=actor,
        action="api_token.issue",
        target=token,
        changes={"user": [None, user.get_username()], "scopes": [None, scopes], "name": [None, token.name]},
    )
    return token, ApiToken.format_token(key_id, secret)


@transaction.atomic
def api_token_revoke(*, actor, token: ApiToken) -> ApiToken:
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return token  # revoking twice is harmless
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_event_record(
        actor=actor, action="api_token.revoke", target=token, changes={"revoked_at": [None, token.revoked_at]}
    )
    return token


def api_token_authenticate(raw: str) -> ApiToken | None:
    """The active token for this text, or None. Compares hashes in constant time. The token's user
    comes with it, and with the user's role already looked up (see `_active_token`)."""
    parsed = ApiToken.parse_token(raw.strip())
    if parsed is None:
        return None
    key_id, secret = parsed
    now = timezone.now()
    found = _active_token(key_id, now)
    if found is None:
        # Do the work of a wrong secret anyway, so an unknown key id answers like a known one.
        hmac.compare_digest(_NO_TOKEN_HASH, hash_secret(secret))
        return None
    token, last_used_is_stale = found
    if not token.secret_matches(secret) or not token.user.is_active:
        return None
    if last_used_is_stale:
        # At most one write a minute per token, not one per request.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


_TOKEN_FIELDS = ("id", "name", "user_id", "key_id", "secret_hash", "scopes")
_USER_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")


@functools.cache
def _active_token_sql(alias: str) -> str:
    """The query of `_active_token`, built once per database (it only depends on table names)."""
    user_model = get_user_model()
    quote = connections[alias].ops.quote_name
    group_link = user_model.groups.through._meta
    role_case = " ".join(f"WHEN %s THEN {int(role)}" for role in ASSIGNABLE_ROLES)
    return f"""
        SELECT {", ".join(f"t.{quote(field)}" for field in _TOKEN_FIELDS)},
               {", ".join(f"u.{quote(field)}" for field in _USER_FIELDS)},
               (SELECT MAX(CASE g.{quote("name")} {role_case} ELSE 0 END)
                  FROM {quote(group_link.db_table)} ug JOIN {quote(Group._meta.db_table)} g
                    ON g.{quote("id")} = ug.{quote("group_id")}
                 WHERE ug.{quote(group_link.get_field("user").column)} = u.{quote("id")}),
               (t.{quote("last_used_at")} IS NULL OR t.{quote("last_used_at")} < %s)
          FROM {quote(ApiToken._meta.db_table)} t JOIN {quote(user_model._meta.db_table)} u
            ON u.{quote("id")} = t.{quote("user_id")}
         WHERE t.{quote("key_id")} = %s AND t.{quote("revoked_at")} IS NULL
           AND (t.{quote("expires_at")} IS NULL OR t.{quote("expires_at")} > %s)
    """


def _active_token(key_id: str, now: datetime, *, using: str | None = None) -> tuple[ApiToken, bool] | None:
    """The unrevoked, unexpired token with this key id and its user, and whether its last use is
    older than LAST_USED_RESOLUTION. One plain-SQL query, not three ORM ones: every API request
    and every ingested event authenticates, and building the ORM's queries took longer than running
    them (0.9 ms against 0.1 ms). Fields not selected load on access, as with `only()`."""
    user_model = get_user_model()
    connection = connections[using or router.db_for_read(ApiToken)]
    when = connection.ops.adapt_datetimefield_value
    sql = _active_token_sql(connection.alias)
    params = [role.group_name for role in ASSIGNABLE_ROLES]
    params += [when(now - LAST_USED_RESOLUTION), key_id, when(now)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    token_values = dict(zip(_TOKEN_FIELDS, row[: len(_TOKEN_FIELDS)], strict=True))
    user_values = dict(zip(_USER_FIELDS, row[len(_TOKEN_FIELDS) : -2], strict=True))
    group_role, last_used_is_stale = row[-2:]
    token = instance_from_row(ApiToken, connection, token_values)
    user = instance_from_row(user_model, connection, user_values)
    cache_role(user, Role.ADMIN if user.is_superuser else Role(group_role or 0))
    token.user = user
    return token, bool(last_used_is_stale)


def token_allows(token: ApiToken, *, method: str, scope_kind: str, workload_class_slug: str | None = None) -> bool:
    """Whether the token's scopes cover a request. `scope_kind` is what the endpoint needs:
    "ingest" for the ingestion endpoint, "deploy" for recording deployments, "api" for everything else."""
    scopes = set(token.scopes or ["*"])
    if "*" in scopes:
        return True
    if scope_kind in ("ingest", "deploy"):
        return f"{scope_kind}:*" in scopes or (
            workload_class_slug is not None and f"{scope_kind}:{workload_class_slug}" in scopes
        )
    return "read" in scopes and method in ("GET", "HEAD", "OPTIONS")
