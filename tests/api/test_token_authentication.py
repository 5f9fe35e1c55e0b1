"""Bearer tokens and sessions at the door: a revoked, expired or malformed token or a deactivated
user's is refused, a token acts with its user's role and its text is shown once, denied writes are
audited. Every registry endpoint against every kind of caller is tests/api/test_permissions.py."""

import pytest
from rest_framework.test import APIClient

from controlplane.roles import Role
from tests.factories import class_payload
from workloads.models import ApiToken, AuditEvent, AuditResult
from workloads.services.tokens import api_token_issue, api_token_revoke


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/"])
def test_api_docs_are_public(db, url):
    assert APIClient().get(url).status_code == 200


def test_a_revoked_token_stops_working(admin_user, token_client):
    client, token = token_client(admin_user)
    assert client.get("/api/v1/classes/").status_code == 200
    api_token_revoke(actor=admin_user, token=token)
    response = client.get("/api/v1/classes/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_stops_working(admin_user):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    token, raw = api_token_issue(
        actor=None, user=admin_user, name="short", expires_at=timezone.now() + timedelta(hours=1)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/me/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert client.get("/api/v1/me/").status_code == 401


def test_a_token_of_a_deactivated_user_stops_working(admin_user, token_client):
    client, _token = token_client(admin_user)
    admin_user.is_active = False
    admin_user.save()
    assert client.get("/api/v1/me/").status_code == 401


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer cpt_nope", "Bearer cpt_abc_wrongsecret"])
def test_malformed_or_wrong_tokens_are_401(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/v1/classes/").status_code == 401


def test_a_token_acts_with_its_users_role(make_user, token_client):
    client, _token = token_client(make_user("viewer-bot", Role.VIEWER))
    assert client.get("/api/v1/classes/").status_code == 200
    assert client.post("/api/v1/classes/", class_payload(), format="json").status_code == 403
    assert client.get("/api/v1/me/").json() == {
        "username": "viewer-bot",
        "role": "viewer",
        "token": "test-token",
        "scopes": ["*"],
        "time_display": "utc",
    }


def test_the_token_text_is_shown_once_and_stored_hashed(admin_user, client_as):
    client = client_as(admin_user)
    response = client.post("/api/v1/tokens/", {"name": "ci", "scopes": ["read"]}, format="json")
    raw = response.json()["token"]
    token = ApiToken.objects.get(pk=response.json()["id"])
    # The secret is everything after the key id: it may itself contain "_" (urlsafe base64).
    _key_id, secret = ApiToken.parse_token(raw)
    assert raw not in token.secret_hash and secret not in str(token.__dict__)
    assert "token" not in client.get(f"/api/v1/tokens/{token.pk}/").json()


def test_denied_writes_are_audited(viewer, client_as):
    response = client_as(viewer).post("/api/v1/classes/", class_payload(), format="json")
    assert response.status_code == 403
    event = AuditEvent.objects.get(action="request.denied")
    assert event.result == AuditResult.DENIED and event.actor_label == viewer.username
    assert event.target_repr == "POST /api/v1/classes/"
