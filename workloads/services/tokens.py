"""Issue, revoke and check API tokens. The secret exists in plain text only in the return value
of `api_token_issue`; the database keeps its SHA-256."""

import hmac
import re
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from workloads.models import ApiToken
from workloads.models.tokens import hash_secret
from workloads.services.audit import audit_event_record

# "*": everything the token's user may do; "read": GET only; "ingest:<slug>" / "ingest:*": only
# the ingestion endpoint of those classes (for producers that should not read the registry).
SCOPE_PATTERN = re.compile(r"^(\*|read|ingest:(\*|[a-z][a-z0-9-]{1,46}[a-z0-9]))$")
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
            {"scopes": f"Unknown scope(s) {', '.join(bad)}: use '*', 'read', 'ingest:*' or 'ingest:<class-slug>'."}
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
    """The active token for this text, or None. Compares hashes in constant time."""
    parsed = ApiToken.parse_token(raw.strip())
    if parsed is None:
        return None
    key_id, secret = parsed
    token = ApiToken.objects.active().select_related("user").filter(key_id=key_id).first()
    if token is None:
        # Do the work of a wrong secret anyway, so an unknown key id answers like a known one.
        hmac.compare_digest(_NO_TOKEN_HASH, hash_secret(secret))
        return None
    if not token.secret_matches(secret) or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        # At most one write a minute per token, not one per request.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def token_allows(token: ApiToken, *, method: str, scope_kind: str, workload_class_slug: str | None = None) -> bool:
    """Whether the token's scopes cover a request. `scope_kind` is what the endpoint needs:
    "ingest" for the ingestion endpoint, "api" for everything else."""
    scopes = set(token.scopes or ["*"])
    if "*" in scopes:
        return True
    if scope_kind == "ingest":
        return "ingest:*" in scopes or (workload_class_slug is not None and f"ingest:{workload_class_slug}" in scopes)
    return "read" in scopes and method in ("GET", "HEAD", "OPTIONS")
