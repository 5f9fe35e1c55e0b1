"""A small OpenID Connect provider served in-process for the tests, with keys the tests generate:
authorization endpoint (signs in `next_user` at once), token endpoint (checks the code, the
redirect URI, the client and the PKCE verifier), UserInfo and JWKS. Tokens are really signed, so
the control plane verifies them exactly as it would Okta's or Keycloak's.

Knobs a test turns to break one thing: `id_token_overrides` (claims: a wrong `aud`, a past
`exp`), `sign_with` (a key the JWKS does not publish), `require_pkce`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.background_server import serve_in_background

CLIENT_ID = "controlplane-test"
CLIENT_SECRET = "test-client-secret"


def new_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_ec_key():
    return ec.generate_private_key(ec.SECP256R1())


class OidcProvider:
    def __init__(self):
        self.key = new_rsa_key()
        self.kid = "test-key-1"
        self.next_user: dict = {"sub": "u-1", "email": "alice@example.com", "groups": []}
        self.id_token_overrides: dict = {}
        self.sign_with: tuple | None = None  # (key, kid) to sign with instead of the published key
        self.require_pkce = True
        self.codes: dict[str, dict] = {}
        self.token_requests: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> OidcProvider:
        serve_in_background(self._server)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def settings(self) -> dict:
        """The control plane's settings pointing at this provider."""
        return {
            "OIDC_ENABLED": True,
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_OP_ISSUER": self.issuer,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.issuer}/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.issuer}/token",
            "OIDC_OP_USER_ENDPOINT": f"{self.issuer}/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.issuer}/jwks",
            "OIDC_RP_SIGN_ALGO": "RS256",
            "OIDC_PROVIDER_NAME": "Test IdP",
        }

    def jwks(self) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def _id_token(self, grant: dict) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **grant["user"],
            **self.id_token_overrides,
        }
        key, kid = self.sign_with or (self.key, self.kid)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/authorize":
                    if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
                        return self._json(400, {"error": "invalid_request"})
                    if provider.require_pkce and query.get("code_challenge_method") != "S256":
                        return self._json(400, {"error": "invalid_request", "error_description": "PKCE S256 required"})
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = {
                        "redirect_uri": query["redirect_uri"],
                        "nonce": query.get("nonce"),
                        "challenge": query.get("code_challenge"),
                        "user": dict(provider.next_user),
                        "access_token": secrets.token_urlsafe(16),
                    }
                    target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                elif url.path == "/jwks":
                    self._json(200, provider.jwks())
                elif url.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    grant = next((g for g in provider.codes.values() if g["access_token"] == token), None)
                    if grant is None:
                        return self._json(401, {"error": "invalid_token"})
                    self._json(200, grant["user"])
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                provider.token_requests.append(form)
                if urlparse(self.path).path != "/token":
                    return self._json(404, {"error": "not_found"})
                grant = provider.codes.get(form.get("code", ""))
                if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
                    return self._json(400, {"error": "invalid_grant"})
                if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                    return self._json(401, {"error": "invalid_client"})
                if provider.require_pkce:
                    verifier = form.get("code_verifier", "")
                    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                    if digest != grant["challenge"]:
                        return self._json(
                            400, {"error": "invalid_grant", "error_description": "PKCE verifier mismatch"}
                        )
                self._json(
                    200,
                    {
                        "access_token": grant["access_token"],
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": provider._id_token(grant),
                    },
                )

        return Handler
