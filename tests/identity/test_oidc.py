"""Signing in through an OpenID Connect provider served in-process (tests/identity/provider.py),
with real signatures: the code flow with PKCE, roles from rules, and every way the proof can fail."""

from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.contrib.auth import get_user_model

from controlplane.roles import Role, user_role
from tests.identity.provider import new_rsa_key
from workloads.models import AuditEvent, AuditResult, UserIdentity

pytestmark = pytest.mark.django_db


def _sign_in(client, provider, **user):
    """The browser's round trip: our redirect to the provider, its redirect back with a code,
    our callback. Returns the callback's response."""
    provider.next_user = {"sub": "u-1", "email": "alice@example.com", "groups": [], **user}
    start = client.get("/oidc/authenticate/?next=/cost/")
    assert start.status_code == 302
    authorize = urlparse(start["Location"])
    params = parse_qs(authorize.query)
    assert start["Location"].startswith(provider.settings()["OIDC_OP_AUTHORIZATION_ENDPOINT"])
    assert params["code_challenge_method"] == ["S256"] and params["nonce"] and params["state"]
    back = requests.get(start["Location"], allow_redirects=False, timeout=5)
    assert back.status_code == 302, back.text
    callback = urlparse(back.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


def _login_page_text(client) -> str:
    return client.get("/accounts/login/").content.decode()


def test_it_signs_in_with_pkce_and_takes_the_role_from_the_group_claim(client, oidc_settings, oidc_provider):
    response = _sign_in(client, oidc_provider, groups=["oncall", "staff"])

    assert response.status_code == 302 and response["Location"] == "/cost/"
    user = get_user_model().objects.get(email="alice@example.com")
    assert user_role(user) is Role.OPERATOR
    assert user.identity.role_source == "OpenID Connect rule group:oncall=operator"
    assert user.identity.sso_provider == "oidc" and user.identity.sso_subject == "u-1"
    assert not user.has_usable_password()
    # The token request carried the PKCE verifier; the provider checked it against the challenge.
    assert oidc_provider.token_requests[-1]["code_verifier"]
    assert client.get("/cost/").status_code == 200
    signed_in = AuditEvent.objects.filter(action="user.sso_sign_in", result=AuditResult.SUCCESS).get()
    assert signed_in.extra["role"] == "operator"


def test_the_role_follows_the_rules_at_every_sign_in(client, oidc_settings, oidc_provider, admin_user):
    _sign_in(client, oidc_provider, groups=["platform-admins"])
    user = get_user_model().objects.get(email="alice@example.com")
    assert user_role(user) is Role.ADMIN

    client.logout()
    _sign_in(client, oidc_provider, groups=[])  # left the admin group: the domain rule remains
    user = get_user_model().objects.get(pk=user.pk)
    assert user_role(user) is Role.VIEWER
    assert user.identity.role_source == "OpenID Connect rule domain:example.com=viewer"
    change = AuditEvent.objects.filter(action="user.set_role", target_id=str(user.pk)).first()
    assert change.changes["role"] == [["admin"], ["viewer"]]


def test_rules_never_demote_the_last_admin(client, oidc_settings, oidc_provider):
    _sign_in(client, oidc_provider, groups=["platform-admins"])
    client.logout()
    _sign_in(client, oidc_provider, groups=[])
    assert "the last active admin" in _login_page_text(client)
    assert user_role(get_user_model().objects.get(email="alice@example.com")) is Role.ADMIN


def test_an_existing_local_user_is_found_by_email(client, oidc_settings, oidc_provider, make_user):
    local = make_user("alice", Role.VIEWER)
    local.email = "Alice@Example.com"
    local.save()
    _sign_in(client, oidc_provider, groups=["oncall"])
    assert get_user_model().objects.filter(email__iexact="alice@example.com").count() == 1
    assert user_role(get_user_model().objects.get(pk=local.pk)) is Role.OPERATOR
    assert local.check_password("correct-horse-battery-9")  # the local password still works


def test_a_person_no_rule_matches_is_refused_and_audited(client, oidc_settings, oidc_provider):
    response = _sign_in(client, oidc_provider, email="mallory@elsewhere.test", groups=[])

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert "No role rule gives mallory@elsewhere.test a role here" in _login_page_text(client)
    assert not get_user_model().objects.filter(email="mallory@elsewhere.test").exists()
    denied = AuditEvent.objects.get(action="user.sso_sign_in")
    assert denied.result == AuditResult.DENIED and denied.target_repr == "mallory@elsewhere.test"
    assert client.get("/").status_code == 302  # not signed in


def test_a_deactivated_account_is_refused(client, oidc_settings, oidc_provider, make_user):
    user = make_user("alice", Role.VIEWER)
    user.email, user.is_active = "alice@example.com", False
    user.save()
    _sign_in(client, oidc_provider, groups=["oncall"])
    assert "is deactivated" in _login_page_text(client)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "someone-else"}, "Audience doesn"),
        ({"exp": 1_000_000_000, "iat": 999_999_000}, "Signature has expired"),
        ({"iss": "https://evil.example"}, "Invalid issuer"),
    ],
    ids=["wrong-audience", "expired", "wrong-issuer"],
)
def test_an_id_token_with_wrong_claims_is_refused(client, oidc_settings, oidc_provider, overrides, reason):
    oidc_provider.id_token_overrides = overrides
    response = _sign_in(client, oidc_provider, groups=["oncall"])

    assert response["Location"] == "/accounts/login/"
    assert reason in _login_page_text(client)
    assert not get_user_model().objects.filter(email="alice@example.com").exists()
    failed = AuditEvent.objects.get(action="user.sso_sign_in")
    assert failed.result == AuditResult.FAILURE and reason in failed.extra["reason"]


def test_an_id_token_signed_by_an_unknown_key_is_refused(client, oidc_settings, oidc_provider):
    oidc_provider.sign_with = (new_rsa_key(), "not-published")
    _sign_in(client, oidc_provider, groups=["oncall"])
    assert "Could not find a valid JWKS" in _login_page_text(client)
    assert not UserIdentity.objects.exists()


def test_an_id_token_forged_with_the_published_key_id_is_refused(client, oidc_settings, oidc_provider):
    oidc_provider.sign_with = (new_rsa_key(), oidc_provider.kid)
    _sign_in(client, oidc_provider, groups=["oncall"])
    assert "Signature verification failed" in _login_page_text(client)
    assert not UserIdentity.objects.exists()


def test_a_replayed_callback_is_refused(client, oidc_settings, oidc_provider):
    oidc_provider.next_user = {"sub": "u-1", "email": "alice@example.com", "groups": ["oncall"]}
    start = client.get("/oidc/authenticate/")
    back = requests.get(start["Location"], allow_redirects=False, timeout=5).headers["Location"]
    callback = urlparse(back)
    assert client.get(f"{callback.path}?{callback.query}")["Location"] == "/"
    client.logout()
    # The state was used up: the same code and state a second time do not sign anyone in.
    response = client.get(f"{callback.path}?{callback.query}")
    assert response["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


def test_the_login_page_offers_single_sign_on(client, oidc_settings):
    page = _login_page_text(client)
    assert "Sign in with Test IdP" in page and 'href="/oidc/authenticate/"' in page
    assert 'name="password"' in page  # local passwords stay possible unless turned off


def test_without_oidc_configured_its_urls_are_not_found(client):
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    assert "Sign in with" not in _login_page_text(client)
