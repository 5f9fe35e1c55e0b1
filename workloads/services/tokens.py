"""Issue, revoke and check API tokens. The secret exists in plain text only in the return value
of `api_token_issue`; the database keeps its SHA-256."""

import hmac
import re
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.utils import timezone

from controlplane.roles import ASSIGNABLE_ROLES, Role, cache_environment_roles, cache_role
from workloads.fastsql.tokens import active_token_row
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
    found = api_token_authenticate_stamped(raw)
    return None if found is None else found[0]


def api_token_authenticate_stamped(raw: str) -> tuple[ApiToken, str] | None:
    """`api_token_authenticate`, with the token's stamp (workloads/freshness.py): what ingestion's
    per-process token cache keeps and re-checks (workloads/services/ingestion_lookups.py)."""
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
    token, last_used_is_stale, stamp = found
    if not token.secret_matches(secret) or not token.user.is_active:
        return None
    if last_used_is_stale:
        api_token_touch(token, now)
    return token, stamp


def api_token_touch(token: ApiToken, now: datetime) -> None:
    """Record the token's use: at most one write a minute per token, not one per request."""
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now


def role_groups() -> list[tuple[str, int]]:
    """Each role's group name and value, as the token queries take them."""
    return [(role.group_name, int(role)) for role in ASSIGNABLE_ROLES]


def _active_token(key_id: str, now: datetime, *, using: str | None = None) -> tuple[ApiToken, bool, str] | None:
    """The unrevoked, unexpired token with this key id and its user, whether its last use is
    older than LAST_USED_RESOLUTION, and its stamp. One plain-SQL query (workloads/fastsql/), not
    three ORM ones: every API request and every ingested event authenticates, and building the
    ORM's queries took longer than running them (0.9 ms against 0.1 ms)."""
    found = active_token_row(
        key_id,
        now,
        stale_before=now - LAST_USED_RESOLUTION,
        role_groups=role_groups(),
        using=using or router.db_for_read(ApiToken),
    )
    if found is None:
        return None
    token, user, group_role, environment_roles, last_used_is_stale, stamp = found
    cache_role(user, Role.ADMIN if user.is_superuser else Role(group_role))
    cache_environment_roles(
        user, {environment: Role.from_name(role) for environment, role in environment_roles.items()}
    )
    token.user = user
    return token, last_used_is_stale, stamp


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
