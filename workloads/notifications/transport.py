"""Sending one message over HTTP and signing webhook bodies.

Standard library only (urllib): a notification is one small POST, and the retry policy lives in
the outbox (services.notifications), not in an HTTP client.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Controlplane-Signature"
TIMESTAMP_HEADER = "X-Controlplane-Timestamp"
DELIVERY_HEADER = "X-Controlplane-Delivery"
EVENT_HEADER = "X-Controlplane-Event"
_RESPONSE_KEPT = 2000


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: urllib would follow a 302 with a GET and call the
    page it lands on a success. The 3xx comes back as an HTTPError and the attempt fails."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str = ""
    response_body: str = ""
    # False when trying again cannot help (a 4xx other than 408 and 429: the request is wrong).
    retryable: bool = True
    duration_ms: int = 0


def encode(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """ "v1=" + hex HMAC-SHA256 over "<timestamp>." followed by the exact body bytes."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(secret: str, *, timestamp: str, body: bytes, signature: str, now: float, tolerance: float = 300) -> bool:
    """What a receiver does (docs/api.md): recompute, compare in constant time, refuse old stamps."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now - stamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


def post_json(url: str, body: bytes, *, headers: dict[str, str], timeout: float) -> Outcome:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with _OPENER.open(request, timeout=timeout) as response:
            text = response.read(_RESPONSE_KEPT).decode(errors="replace")
            return Outcome(ok=True, status_code=response.status, response_body=text, duration_ms=elapsed())
    except urllib.error.HTTPError as exc:
        text = exc.read(_RESPONSE_KEPT).decode(errors="replace") if exc.fp else ""
        retryable = exc.code >= 500 or exc.code in (408, 429)
        return Outcome(
            ok=False,
            status_code=exc.code,
            error=f"HTTP {exc.code} {exc.reason}",
            response_body=text,
            retryable=retryable,
            duration_ms=elapsed(),
        )
    except TimeoutError:
        return Outcome(ok=False, error=f"Timed out after {timeout:g} s", duration_ms=elapsed())
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            return Outcome(ok=False, error=f"Timed out after {timeout:g} s", duration_ms=elapsed())
        return Outcome(ok=False, error=f"Could not connect: {reason}", duration_ms=elapsed())
    except OSError as exc:
        return Outcome(ok=False, error=f"Could not connect: {exc}", duration_ms=elapsed())
