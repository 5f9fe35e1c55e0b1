"""The permission matrix: every registry endpoint x every kind of caller -> expected status."""

import pytest
from rest_framework.test import APIClient

from controlplane.roles import Role
from tests.factories import CostRatesFactory, WorkloadClassFactory, class_payload
from workloads.models import ApiToken, AuditEvent, AuditResult
from workloads.services.tokens import api_token_issue, api_token_revoke

CALLERS = ["anonymous", "outsider", "viewer", "operator", "admin", "admin_token", "read_token", "ingest_token"]


@pytest.fixture
def world(db, make_user):
    """Objects every endpoint can act on, and one client per kind of caller."""
    WorkloadClassFactory(slug="existing-class")
    CostRatesFactory(name="spare-rates")
    CostRatesFactory(name="new-rates-base")
    admin = make_user("root-admin", Role.ADMIN)
    token, _raw = api_token_issue(actor=None, user=admin, name="victim")
    audit_id = AuditEvent.objects.first().pk

    clients = {"anonymous": APIClient()}
    for name, role in [("outsider", None), ("viewer", Role.VIEWER), ("operator", Role.OPERATOR), ("admin", Role.ADMIN)]:
        client = APIClient()
        client.force_login(make_user(f"{name}-user", role))
        clients[name] = client
    for name, scopes in [("admin_token", ["*"]), ("read_token", ["read"]), ("ingest_token", ["ingest:*"])]:
        _token, raw = api_token_issue(actor=None, user=admin, name=name, scopes=scopes)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        clients[name] = client
    return {"clients": clients, "token_id": token.pk, "audit_id": audit_id}


def _expect(
    anonymous=401, outsider=403, viewer=403, operator=403, admin=200, admin_token=None, read_token=403, ingest_token=403
):
    expected = {
        "anonymous": anonymous,
        "outsider": outsider,
        "viewer": viewer,
        "operator": operator,
        "admin": admin,
        "admin_token": admin if admin_token is None else admin_token,
        "read_token": read_token,
        "ingest_token": ingest_token,
    }
    return expected


READ_BY_VIEWERS = _expect(viewer=200, operator=200, read_token=200)
ADMIN_ONLY_READ = _expect(read_token=200)  # read_token belongs to an admin

MATRIX = [
    ("get", "/api/v1/classes/", None, READ_BY_VIEWERS),
    ("get", "/api/v1/classes/existing-class/", None, READ_BY_VIEWERS),
    ("post", "/api/v1/classes/", lambda w: class_payload(slug="new-class"), _expect(admin=201)),
    ("patch", "/api/v1/classes/existing-class/", lambda w: {"description": "changed"}, _expect()),
    ("put", "/api/v1/classes/existing-class/", lambda w: class_payload(slug="existing-class"), _expect()),
    ("delete", "/api/v1/classes/existing-class/", None, _expect(admin=204)),
    ("get", "/api/v1/cost-rates/", None, READ_BY_VIEWERS),
    ("get", "/api/v1/cost-rates/spare-rates/", None, READ_BY_VIEWERS),
    ("post", "/api/v1/cost-rates/", lambda w: {"name": "fresh-rates", "vcpu_second": "0.00002"}, _expect(admin=201)),
    ("patch", "/api/v1/cost-rates/spare-rates/", lambda w: {"description": "x"}, _expect()),
    ("delete", "/api/v1/cost-rates/spare-rates/", None, _expect(admin=204)),
    ("get", "/api/v1/audit-events/", None, READ_BY_VIEWERS),
    ("get", "/api/v1/audit-events/{audit_id}/", None, READ_BY_VIEWERS),
    ("delete", "/api/v1/audit-events/{audit_id}/", None, _expect(admin=405)),
    ("get", "/api/v1/tokens/", None, ADMIN_ONLY_READ),
    ("get", "/api/v1/tokens/{token_id}/", None, ADMIN_ONLY_READ),
    ("post", "/api/v1/tokens/", lambda w: {"name": "bot", "scopes": ["read"]}, _expect(admin=201)),
    ("delete", "/api/v1/tokens/{token_id}/", None, _expect(admin=204)),
    ("get", "/api/v1/me/", None, READ_BY_VIEWERS),
    ("get", "/api/v1/users/", None, ADMIN_ONLY_READ),
    ("get", "/api/v1/users/viewer-user/", None, ADMIN_ONLY_READ),
    ("get", "/api/v1/users/viewer-user/tokens/", None, ADMIN_ONLY_READ),
    ("post", "/api/v1/users/", lambda w: {"username": "newcomer", "role": "viewer"}, _expect(admin=201)),
    ("patch", "/api/v1/users/viewer-user/", lambda w: {"role": "operator"}, _expect()),
    ("post", "/api/v1/users/root-admin/revoke-tokens/", None, _expect()),
    ("patch", "/api/v1/me/", lambda w: {"time_display": "local"}, _expect(viewer=200, operator=200)),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "url", "body", "expected"), MATRIX, ids=[f"{m} {u}" for m, u, _b, _e in MATRIX])
def test_permission_matrix(world, caller, method, url, body, expected):
    client = world["clients"][caller]
    url = url.format(**world)
    kwargs = {"format": "json"}
    if body is not None:
        kwargs["data"] = body(world)
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == expected[caller], (caller, method, url, response.content[:300])


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
