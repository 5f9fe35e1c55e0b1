"""The plain-SQL token lookup behind every bearer request: it must agree with the ORM's view of the
token, its user and the user's role, on PostgreSQL and on SQLite (`make run`)."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from controlplane.roles import Role, user_role
from workloads.models import ApiToken
from workloads.models.tokens import hash_secret
from workloads.services.tokens import LAST_USED_RESOLUTION, _active_token

DATABASES = ["default", "contract_sqlite"]
pytestmark = pytest.mark.django_db(databases=DATABASES)


def _token_for(using: str, *, groups=(), superuser=False, active=True, **token_fields) -> ApiToken:
    users = get_user_model().objects.db_manager(using)
    user = users.create_user(username=f"lookup-{using}", is_superuser=superuser, is_active=active)
    user.groups.set(Group.objects.using(using).filter(name__in=groups))
    fields = {"name": "lookup", "key_id": "abc123", "secret_hash": hash_secret("s"), "scopes": ["ingest:*"]}
    return ApiToken.objects.using(using).create(user=user, **{**fields, **token_fields})


@pytest.mark.parametrize("using", DATABASES)
@pytest.mark.parametrize(
    ("groups", "superuser", "role"),
    [
        ((), False, Role.NONE),
        (("viewer",), False, Role.VIEWER),
        (("viewer", "operator"), False, Role.OPERATOR),
        (("admin", "viewer"), False, Role.ADMIN),
        ((), True, Role.ADMIN),
    ],
)
def test_the_token_comes_with_its_user_and_role(using, groups, superuser, role):
    stored = _token_for(using, groups=groups, superuser=superuser)
    token, stale, _stamp = _active_token("abc123", timezone.now(), using=using)
    assert (token.pk, token.name, token.scopes, token.secret_hash) == (
        stored.pk,
        "lookup",
        ["ingest:*"],
        stored.secret_hash,
    )
    assert (token.user.pk, token.user.username, token.user.is_active) == (stored.user.pk, stored.user.username, True)
    assert token.user.is_superuser is superuser
    assert user_role(token.user) == role
    assert stale  # never used yet
    # Fields the query left out load on access, as with only().
    assert token.user.email == "" and token.created_at == stored.created_at


@pytest.mark.parametrize("using", DATABASES)
def test_revoked_and_expired_tokens_are_not_found(using):
    now = timezone.now()
    token = _token_for(using)
    ApiToken.objects.using(using).filter(pk=token.pk).update(expires_at=now + timedelta(seconds=5))
    assert _active_token("abc123", now, using=using) is not None
    assert _active_token("abc123", now + timedelta(seconds=5), using=using) is None
    ApiToken.objects.using(using).filter(pk=token.pk).update(expires_at=None, revoked_at=now)
    assert _active_token("abc123", now, using=using) is None
    assert _active_token("other1", now, using=using) is None


@pytest.mark.parametrize("using", DATABASES)
def test_last_use_is_stale_only_after_the_resolution(using):
    now = timezone.now()
    _token_for(using, last_used_at=now - LAST_USED_RESOLUTION + timedelta(seconds=1))
    assert _active_token("abc123", now, using=using)[1] is False
    assert _active_token("abc123", now + timedelta(seconds=2), using=using)[1] is True


@pytest.mark.parametrize("using", DATABASES)
def test_an_inactive_user_is_reported_inactive(using):
    _token_for(using, active=False)
    token, _stale, _stamp = _active_token("abc123", timezone.now(), using=using)
    assert token.user.is_active is False and user_role(token.user) == Role.NONE


@pytest.mark.parametrize("using", DATABASES)
def test_the_token_comes_with_its_users_roles_by_environment(using):
    """The environment overrides come with the token (no query of their own per request), as the
    ORM reads them."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    from controlplane.roles import environment_overrides
    from workloads.models import Environment, EnvironmentRole

    stored = _token_for(using, groups=("viewer",))
    for slug, role in (("lookup-prod", "operator"), ("lookup-staging", "admin")):
        environment = Environment.objects.using(using).create(slug=slug, name=slug)
        EnvironmentRole.objects.using(using).create(user=stored.user, environment=environment, role=role)
    expected = {
        environment: Role.from_name(role)
        for environment, role in EnvironmentRole.objects.using(using).values_list("environment_id", "role")
    }
    token, _stale, _stamp = _active_token("abc123", timezone.now(), using=using)
    with CaptureQueriesContext(connections[using]) as queries:
        assert environment_overrides(token.user) == expected
    assert len(queries) == 0

    other = get_user_model().objects.db_manager(using).create_user(username=f"no-overrides-{using}")
    fields = {"name": "other", "key_id": "def456", "secret_hash": hash_secret("s"), "scopes": ["ingest:*"]}
    ApiToken.objects.using(using).create(user=other, **fields)
    token, _stale, _stamp = _active_token("def456", timezone.now(), using=using)
    assert environment_overrides(token.user) == {}
