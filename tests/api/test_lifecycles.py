"""Create, read, delete, read again, for every API object that people can delete: a deleted object
is gone from its URL and its list, except a token, which DELETE revokes and keeps readable for
the audit trail. (The stateful fuzz test checks the same property on generated sequences, but its
bounded CI run rarely chains a create and a delete: this is the deterministic check.)"""

import pytest
from rest_framework.test import APIClient

from controlplane.roles import Role
from tests.factories import class_payload

LIFECYCLES = [
    ("/api/v1/classes/", lambda: class_payload(slug="cycle-class", slos=[], schedules=[]), "slug"),
    ("/api/v1/cost-rates/", lambda: {"name": "cycle-rates", "vcpu_second": "0.00002"}, "name"),
    ("/api/v1/triage-rules/", lambda: {"name": "cycle", "error_signature": "sig-cycle", "action": "hold"}, "id"),
]


@pytest.fixture
def admin_client(db, make_user):
    client = APIClient()
    client.force_login(make_user("cycle-admin", Role.ADMIN))
    return client


def _listed(client, collection: str, key: str, value) -> bool:
    page = client.get(collection, {"page_size": 1000}).json()
    rows = page["results"] if isinstance(page, dict) else page
    return any(row[key] == value for row in rows)


@pytest.mark.parametrize(("collection", "body", "key"), LIFECYCLES, ids=[c for c, _b, _k in LIFECYCLES])
def test_a_deleted_object_is_gone(admin_client, collection, body, key):
    created = admin_client.post(collection, body(), format="json")
    assert created.status_code == 201, created.content[:500]
    value = created.json()[key]
    url = f"{collection}{value}/"
    assert admin_client.get(url).status_code == 200
    assert _listed(admin_client, collection, key, value)

    assert admin_client.delete(url).status_code == 204
    assert admin_client.get(url).status_code == 404
    assert not _listed(admin_client, collection, key, value)
    assert admin_client.delete(url).status_code == 404


def test_a_deleted_token_is_revoked_and_stays_readable(admin_client):
    created = admin_client.post("/api/v1/tokens/", {"name": "cycle-bot", "scopes": ["read"]}, format="json")
    assert created.status_code == 201, created.content[:500]
    url = f"/api/v1/tokens/{created.json()['id']}/"
    raw = created.json()["token"]
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert bot.get("/api/v1/classes/").status_code == 200

    assert admin_client.delete(url).status_code == 204
    shown = admin_client.get(url)
    assert shown.status_code == 200 and shown.json()["active"] is False and shown.json()["revoked_at"]
    assert bot.get("/api/v1/classes/").status_code == 401
