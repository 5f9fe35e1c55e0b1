"""API token secrets are compared in constant time (hmac.compare_digest on their SHA-256), and a
wrong secret for an existing key id fails exactly like an unknown key id: same work, same 401."""

from __future__ import annotations

import hmac

import pytest
from rest_framework.test import APIClient

from workloads.models.tokens import hash_secret
from workloads.services.tokens import api_token_authenticate, api_token_issue


@pytest.fixture
def comparisons(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


def test_a_wrong_secret_and_an_unknown_key_id_do_the_same_work(admin_user, comparisons):
    token, raw = api_token_issue(actor=None, user=admin_user, name="bot")
    prefix, key_id, secret = raw.split("_", 2)
    wrong_secret = f"{prefix}_{key_id}_{'x' * len(secret)}"
    unknown_key = f"{prefix}_{'0' * len(key_id)}_{secret}"

    assert api_token_authenticate(raw) == token
    assert comparisons == [(token.secret_hash, hash_secret(secret))]
    for text in (wrong_secret, unknown_key):
        comparisons.clear()
        assert api_token_authenticate(text) is None
        [(_stored, offered)] = comparisons  # one constant-time comparison, known key id or not
        assert offered == hash_secret(text.split("_", 2)[2])


def test_both_fail_with_the_same_answer(admin_user):
    token, raw = api_token_issue(actor=None, user=admin_user, name="bot")
    prefix, key_id, secret = raw.split("_", 2)
    answers = []
    for text in (f"{prefix}_{key_id}_{'x' * len(secret)}", f"{prefix}_{'0' * len(key_id)}_{secret}"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {text}")
        response = client.get("/api/v1/me/")
        answers.append((response.status_code, response.json(), response["WWW-Authenticate"]))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401 and answers[0][1]["detail"] == "Invalid, expired or revoked token."
