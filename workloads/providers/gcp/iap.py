"""Verifying the `x-goog-iap-jwt-assertion` header that Identity-Aware Proxy adds to each request it
lets through: ES256 signature against IAP's public keys, audience, issuer, issued-at and expiry
(https://cloud.google.com/iap/docs/signed-headers-howto)."""

from __future__ import annotations

import threading
import time

import requests
from google.auth import exceptions as google_auth_exceptions
from google.auth import jwt as google_jwt

IAP_ISSUER = "https://cloud.google.com/iap"
CERTS_MAX_AGE_SECONDS = 3600
# A token naming a key we do not know refetches the keys (IAP rotates them), at most this often,
# so forged tokens with made-up key ids cannot make every request fetch.
CERTS_MIN_REFETCH_SECONDS = 60
CLOCK_SKEW_SECONDS = 30


class IapAssertionInvalid(Exception):
    pass


class _Certs:
    def __init__(self):
        self._lock = threading.Lock()
        self._by_url: dict[str, tuple[float, dict]] = {}

    def get(self, url: str, *, kid: str | None) -> dict:
        with self._lock:
            fetched_at, certs = self._by_url.get(url, (0.0, {}))
            age = time.monotonic() - fetched_at
            stale = age > CERTS_MAX_AGE_SECONDS or (kid not in certs and age > CERTS_MIN_REFETCH_SECONDS)
            if stale or not certs:
                try:
                    response = requests.get(url, timeout=5)
                    response.raise_for_status()
                    certs = response.json()
                except (requests.RequestException, ValueError) as exc:
                    raise IapAssertionInvalid(f"IAP's public keys could not be fetched from {url}: {exc}") from None
                self._by_url[url] = (time.monotonic(), certs)
            return certs


_certs = _Certs()


def iap_assertion_verify(assertion: str, *, audience: str, certs_url: str) -> dict:
    """The assertion's claims (`sub`, `email`, ...) or IapAssertionInvalid saying what failed."""
    try:
        kid = google_jwt.decode_header(assertion).get("kid")
    except (ValueError, google_auth_exceptions.GoogleAuthError) as exc:
        raise IapAssertionInvalid(f"not a JWT: {exc}") from None
    certs = _certs.get(certs_url, kid=kid)
    if kid not in certs:
        raise IapAssertionInvalid(f"signed with an unknown key {kid!r}")
    try:
        claims = google_jwt.decode(assertion, certs=certs, audience=audience, clock_skew_in_seconds=CLOCK_SKEW_SECONDS)
    except (ValueError, google_auth_exceptions.GoogleAuthError) as exc:
        raise IapAssertionInvalid(str(exc)) from None
    if claims.get("iss") != IAP_ISSUER:
        raise IapAssertionInvalid(f"issued by {claims.get('iss')!r}, not {IAP_ISSUER}")
    if not claims.get("sub") or not claims.get("email"):
        raise IapAssertionInvalid("no subject or e-mail address")
    return claims
