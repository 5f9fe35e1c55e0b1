"""google-group: role rules behind Identity-Aware Proxy, answered by the Cloud Identity Groups API
(an in-process server over real HTTP, reached through google.auth.default() and AuthorizedSession
with a service-account key whose token endpoint is that server)."""

import json

import pytest
from django.contrib.auth import get_user_model

from controlplane.role_rules import GoogleGroupsUnavailable, parse_role_rules, role_from_rules
from controlplane.roles import Role, user_role
from tests.identity.groups_server import GroupsServer
from tests.identity.test_iap import AUDIENCE, IapKeys
from workloads.models import AuditEvent, AuditResult
from workloads.providers.gcp.groups import SCOPES, google_groups_forget

ADMINS = "platform-admins@example.com"
RULES = f"google-group:{ADMINS}=admin, google-group:oncall@example.com=operator, domain:example.com=viewer"


@pytest.fixture
def groups(settings, tmp_path, monkeypatch):
    server = GroupsServer()
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(server.service_account_info()))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    settings.GOOGLE_GROUPS_API_URL = server.url
    settings.GOOGLE_GROUPS_CACHE_SECONDS = 300
    settings.GOOGLE_GROUPS_TIMEOUT_SECONDS = 0.5
    google_groups_forget()
    yield server
    google_groups_forget()
    server.stop()


@pytest.fixture
def iap(settings, groups):
    keys = IapKeys()
    settings.IAP_AUDIENCE = AUDIENCE
    settings.IAP_CERTS_URL = keys.url
    settings.AUTHENTICATION_BACKENDS = ["controlplane.iap.IapBackend"]
    settings.SSO_ROLE_RULES = parse_role_rules(RULES)
    yield keys
    keys.server.shutdown()
    keys.server.server_close()


def _sign_in(client, iap, email="alice@example.com"):
    return client.get(
        "/cost/", headers={"x-goog-iap-jwt-assertion": iap.assertion(email=f"accounts.google.com:{email}")}
    )


def _alice():
    return get_user_model().objects.get(email="alice@example.com")


def test_a_google_group_rule_parses_and_matches_case_insensitively():
    rules = parse_role_rules("google-group:Admins@Example.com=admin, domain:example.com=viewer")
    decision = role_from_rules(
        rules, email="a@example.com", groups=[], google_groups=lambda email: {"admins@example.com"}
    )
    assert decision.role is Role.ADMIN
    assert decision.source == "Google group Admins@Example.com (rule google-group:Admins@Example.com=admin)"
    # Without a lookup (OIDC's claim-only setups) the rule cannot match.
    assert role_from_rules(rules, email="a@example.com", groups=[ADMINS]).role is Role.VIEWER


def test_a_failed_lookup_fails_closed_and_the_other_rules_still_apply():
    def unavailable(email):
        raise GoogleGroupsUnavailable("the Cloud Identity Groups API answered 503")

    decision = role_from_rules(parse_role_rules(RULES), email="a@example.com", groups=[], google_groups=unavailable)
    assert decision.role is Role.VIEWER
    assert decision.google_groups_error == "the Cloud Identity Groups API answered 503"


def test_the_lookup_is_made_once_and_only_when_it_could_raise_the_role():
    calls = []

    def lookup(email):
        calls.append(email)
        return frozenset({"oncall@example.com"})

    rules = parse_role_rules(f"email:root@example.com=admin, {RULES}")
    assert role_from_rules(rules, email="root@example.com", groups=[], google_groups=lookup).role is Role.ADMIN
    assert calls == []
    assert role_from_rules(rules, email="bob@example.com", groups=[], google_groups=lookup).role is Role.OPERATOR
    assert calls == ["bob@example.com"]


@pytest.mark.django_db
def test_a_member_of_the_google_group_signs_in_with_its_role_named_as_the_source(client, iap, groups):
    groups.memberships["alice@example.com"] = [ADMINS, "everyone@example.com"]
    assert _sign_in(client, iap).status_code == 200
    user = _alice()
    assert user_role(user) is Role.ADMIN
    assert user.identity.role_source == (
        f"Identity-Aware Proxy Google group {ADMINS} (rule google-group:{ADMINS}=admin)"
    )
    # The service's own credentials, with the read-only groups scope, were used for the call.
    assert [claims["scope"] for claims in groups.token_requests] == [" ".join(SCOPES)]
    assert groups.searches[0]["query"] == (
        "member_key_id == 'alice@example.com' && 'cloudidentity.googleapis.com/groups.discussion_forum' in labels"
    )


@pytest.mark.django_db
def test_groups_are_read_over_every_page(client, iap, groups):
    groups.memberships["alice@example.com"] = ["a@example.com", "b@example.com", "oncall@example.com"]
    groups.page_size = 1
    assert _sign_in(client, iap).status_code == 200
    assert user_role(_alice()) is Role.OPERATOR
    assert [search.get("pageToken") for search in groups.searches] == [None, "1", "2"]


@pytest.mark.django_db
def test_answers_are_cached_for_the_configured_time(settings, client, iap, groups):
    groups.memberships["alice@example.com"] = ["oncall@example.com"]
    assert _sign_in(client, iap).status_code == 200
    groups.memberships["alice@example.com"] = [ADMINS]  # added to a group meanwhile
    client.logout()
    assert _sign_in(client, iap).status_code == 200
    assert len(groups.searches) == 1  # the second sign-in used the cached answer
    assert user_role(_alice()) is Role.OPERATOR

    settings.GOOGLE_GROUPS_CACHE_SECONDS = 0
    client.logout()
    assert _sign_in(client, iap).status_code == 200
    assert len(groups.searches) == 2
    assert user_role(_alice()) is Role.ADMIN


@pytest.mark.django_db
@pytest.mark.parametrize("failure", ["403", "timeout", "unreachable"])
def test_a_failed_lookup_keeps_the_role_from_other_rules_and_is_audited(client, iap, groups, failure):
    groups.memberships["alice@example.com"] = [ADMINS]
    if failure == "403":
        groups.fail_with = (403, {"error": {"code": 403, "message": "Caller does not have permission"}})
    elif failure == "timeout":
        groups.delay_seconds = 2.0  # the client waits 0.5 s
    else:
        groups.stop()  # its port is closed: connection refused
    response = _sign_in(client, iap)
    assert response.status_code == 200
    assert user_role(_alice()) is Role.VIEWER
    event = AuditEvent.objects.get(action="user.sso_sign_in", result=AuditResult.SUCCESS)
    expected = {
        "403": "answered 403: Caller does not have permission",
        "timeout": "timed out",
        "unreachable": "could not be reached",
    }
    assert expected[failure] in event.extra["google_groups_error"]
    # A failure is not cached: the next sign-in asks again.
    if failure == "403":
        groups.fail_with = None
        client.logout()
        assert _sign_in(client, iap).status_code == 200
        assert user_role(_alice()) is Role.ADMIN


@pytest.mark.django_db
def test_no_role_at_all_when_the_only_matching_rule_needed_the_failed_lookup(settings, client, iap, groups):
    settings.SSO_ROLE_RULES = parse_role_rules(f"google-group:{ADMINS}=admin")
    groups.memberships["alice@example.com"] = [ADMINS]
    groups.fail_with = (500, {"error": {"code": 500, "message": "backend error"}})
    response = _sign_in(client, iap)
    assert response.status_code == 403
    assert "could not be read just now" in response.content.decode()
    assert not get_user_model().objects.filter(email="alice@example.com").exists()
