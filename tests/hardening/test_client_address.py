"""The client's address behind trusted proxies: the entry the outermost trusted proxy appended to
X-Forwarded-For, never what the client wrote to the left of it (used by the login limits, the
throttles and the audit log)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client, RequestFactory, override_settings

from controlplane.middleware import _source_ip
from workloads.models import AuditEvent


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


@override_settings(
    TRUST_X_FORWARDED_FOR=True, TRUSTED_PROXY_HOPS=1, LOGIN_FAILURES_PER_USERNAME=0, LOGIN_FAILURES_PER_IP=3
)
def test_a_rotating_spoofed_entry_neither_bypasses_the_address_limit_nor_forges_the_audit_address(db):
    # Cloud Run's front end appends the address it saw; the client controls everything before it.
    statuses = [
        Client(REMOTE_ADDR="169.254.1.1", HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, 203.0.113.50")
        .post("/accounts/login/", {"username": f"user-{n}", "password": "wrong"})
        .status_code
        for n in range(6)
    ]
    assert statuses == [200, 200, 429, 429, 429, 429]
    [event] = AuditEvent.objects.filter(action="login.locked_out")
    assert event.source_ip == "203.0.113.50" and event.target_repr == "address 203.0.113.50"


def _address(forwarded_for: str | None, *, hops: int = 1, trusted: bool = True) -> str | None:
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    request = RequestFactory().get("/", REMOTE_ADDR="169.254.1.1", **headers)
    with override_settings(TRUST_X_FORWARDED_FOR=trusted, TRUSTED_PROXY_HOPS=hops):
        return _source_ip(request)


@pytest.mark.parametrize(
    ("forwarded_for", "hops", "expected"),
    [
        ("203.0.113.50", 1, "203.0.113.50"),
        ("1.1.1.1, 203.0.113.50", 1, "203.0.113.50"),
        ("1.1.1.1,2.2.2.2 , 203.0.113.50", 1, "203.0.113.50"),
        # A load balancer in front appends "client, load balancer": two trusted hops.
        ("1.1.1.1, 203.0.113.50, 35.191.0.1", 2, "203.0.113.50"),
        # Fewer entries than hops: all were written by our proxies, the leftmost is the client.
        ("203.0.113.50", 2, "203.0.113.50"),
        ("2001:db8::1", 1, "2001:db8::1"),
        # Not an address where the client's should be: the peer's, rather than garbage in the audit log.
        ("1.1.1.1, not-an-address", 1, "169.254.1.1"),
        ("", 1, "169.254.1.1"),
        (None, 1, "169.254.1.1"),
    ],
)
def test_the_address_is_counted_from_the_right(forwarded_for, hops, expected):
    assert _address(forwarded_for, hops=hops) == expected


def test_the_header_is_ignored_unless_trusted():
    assert _address("203.0.113.50", trusted=False) == "169.254.1.1"


def test_a_malformed_header_on_a_mutating_request_is_no_error(db):
    client = Client(REMOTE_ADDR="169.254.1.1", HTTP_X_FORWARDED_FOR="<script>, \x00")
    with override_settings(TRUST_X_FORWARDED_FOR=True, LOGIN_FAILURES_PER_IP=1):
        assert client.post("/accounts/login/", {"username": "x", "password": "y"}).status_code == 429
    assert AuditEvent.objects.get(action="login.locked_out").source_ip == "169.254.1.1"
