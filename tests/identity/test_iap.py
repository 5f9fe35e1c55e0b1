"""Signing in behind Identity-Aware Proxy: the `x-goog-iap-jwt-assertion` header, signed (ES256)
with a key the test generates and publishes at an in-process certs URL, as IAP publishes its own."""

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from django.contrib.auth import get_user_model

from controlplane.role_rules import parse_role_rules
from controlplane.roles import Role, user_role
from tests.background_server import serve_in_background
from tests.identity.provider import new_ec_key
from workloads.models import AuditEvent, AuditResult

pytestmark = pytest.mark.django_db
AUDIENCE = "/projects/123456/global/backendServices/987654"
ISSUER = "https://cloud.google.com/iap"
KID = "iap-test-key"


class IapKeys:
    def __init__(self):
        self.key = new_ec_key()
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        body = json.dumps({KID: pem.decode()}).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/iap/verify/public_key"
        serve_in_background(self.server)

    def assertion(self, *, key=None, kid=KID, **overrides) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 600,
            "sub": "accounts.google.com:1234",
            "email": "accounts.google.com:alice@example.com",
            **overrides,
        }
        return jwt.encode(claims, key or self.key, algorithm="ES256", headers={"kid": kid})


@pytest.fixture
def iap(settings):
    keys = IapKeys()
    settings.IAP_AUDIENCE = AUDIENCE
    settings.IAP_CERTS_URL = keys.url
    settings.AUTHENTICATION_BACKENDS = ["controlplane.iap.IapBackend"]
    settings.SSO_ROLE_RULES = parse_role_rules("email:alice@example.com=operator, domain:example.com=viewer")
    yield keys
    keys.server.shutdown()
    keys.server.server_close()


def _get(client, path, assertion):
    return client.get(path, headers={"x-goog-iap-jwt-assertion": assertion})


def test_a_valid_assertion_signs_the_person_in_by_email(client, iap):
    response = _get(client, "/cost/", iap.assertion())
    assert response.status_code == 200
    user = get_user_model().objects.get(email="alice@example.com")
    assert user_role(user) is Role.OPERATOR
    assert user.identity.role_source == "Identity-Aware Proxy rule email:alice@example.com=operator"
    assert user.identity.sso_subject == "accounts.google.com:1234"
    # Later requests of the session do not sign in again.
    assert _get(client, "/cost/", iap.assertion()).status_code == 200
    assert AuditEvent.objects.filter(action="user.sso_sign_in", result=AuditResult.SUCCESS).count() == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"aud": "/projects/1/global/backendServices/other"}, "wrong audience"),
        ({"exp": 1_000_000_000, "iat": 999_999_000}, "Token expired"),
        ({"iss": "https://accounts.google.com"}, "issued by"),
        ({"kid": "rotated-away"}, "unknown key"),
        ({"key": "forged"}, "Could not verify token signature"),
    ],
    ids=["wrong-audience", "expired", "wrong-issuer", "unknown-key", "forged-signature"],
)
def test_a_bad_assertion_is_refused_with_401_and_audited(client, iap, change, reason):
    if change.get("key") == "forged":
        change = {"key": new_ec_key()}
    response = _get(client, "/cost/", iap.assertion(**change))
    assert response.status_code == 401
    assert reason in response.content.decode()
    assert not get_user_model().objects.filter(email="alice@example.com").exists()
    assert AuditEvent.objects.get(action="user.sso_sign_in").result == AuditResult.FAILURE


def test_a_person_without_a_matching_rule_gets_403(client, iap):
    response = _get(client, "/", iap.assertion(email="accounts.google.com:eve@elsewhere.test"))
    assert response.status_code == 403
    assert "No role rule gives eve@elsewhere.test a role" in response.content.decode()


def test_not_a_jwt_is_a_401_not_a_500(client, iap):
    assert _get(client, "/", "garbage").status_code == 401


def test_api_tokens_are_left_to_the_token(client, iap, token_client, operator):
    api, _ = token_client(operator)
    response = api.get("/api/v1/me/", HTTP_X_GOOG_IAP_JWT_ASSERTION="garbage")
    assert response.status_code == 200 and response.json()["username"] == "otto-operator"


def test_without_iap_configured_the_header_is_ignored(client, iap, settings):
    settings.IAP_AUDIENCE = ""
    response = _get(client, "/", iap.assertion())
    assert response.status_code == 302  # to the login page
