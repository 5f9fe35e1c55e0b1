"""Rate limits: failed logins per username and per source address, ingestion requests per token;
429 with Retry-After, lockouts audited, limits lifted when their window ends, and a broken cache
letting requests through rather than locking everybody out."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client, override_settings
from django.utils import timezone

from controlplane import ratelimit
from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from workloads.models import AuditEvent, AuditResult, IdempotencyRecord
from workloads.providers import get_providers
from workloads.providers.specs import queue_spec

PASSWORD = "correct-horse-battery-9"


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def _login(username: str, password: str, *, ip: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=ip).post("/accounts/login/", {"username": username, "password": password})


def _logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


# --- The counter ------------------------------------------------------------------------------------------
def test_a_fixed_window_allows_the_limit_then_refuses_until_it_ends():
    limit = ratelimit.Limit(count=3, window=60)
    start = 1_000_040.0  # 20 s into the window [1_000_020, 1_000_080)
    verdicts = [ratelimit.hit("t", "me", limit, now=start + i) for i in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[-1].retry_after == 37
    assert not ratelimit.peek("t", "me", limit, now=start + 39).allowed
    assert ratelimit.hit("t", "someone-else", limit, now=start).allowed
    assert ratelimit.hit("t", "me", limit, now=start + 40).allowed  # the next window


def test_a_limit_of_zero_is_off():
    limit = ratelimit.Limit(count=0, window=60)
    assert all(ratelimit.hit("t", "me", limit).allowed for _ in range(100))


# --- Login ------------------------------------------------------------------------------------------------
@override_settings(LOGIN_FAILURES_PER_USERNAME=3, LOGIN_FAILURES_PER_IP=0, LOGIN_FAILURE_WINDOW_SECONDS=300)
def test_failed_logins_lock_the_username_from_that_address_even_for_the_right_password(make_user):
    user = make_user("lena", Role.VIEWER, password=PASSWORD)
    for _ in range(2):
        response = _login("lena", "wrong")
        assert response.status_code == 200 and "didn’t match" in response.content.decode()
    locked = _login("Lena ", "wrong")  # another spelling of the same name counts too
    assert locked.status_code == 429
    assert 1 <= int(locked["Retry-After"]) <= 300
    assert "Too many failed logins" in locked.content.decode()

    refused = _login("lena", PASSWORD)
    assert refused.status_code == 429 and not _logged_in(refused)
    assert _login("other-user", "wrong").status_code == 200  # other usernames are not affected

    [event] = AuditEvent.objects.filter(action="login.locked_out")
    assert (event.actor, event.result, event.source_ip) == (user, AuditResult.DENIED, "10.0.0.1")
    assert event.extra["limit"] == "username_from_address" and event.extra["failures"] == 3
    assert PASSWORD not in str(event.extra) and "wrong" not in str(event.extra)

    with time_machine.travel(timezone.now() + timedelta(seconds=301)):
        assert _logged_in(_login("lena", PASSWORD))


@override_settings(LOGIN_FAILURES_PER_USERNAME=0, LOGIN_FAILURES_PER_IP=3)
def test_failed_logins_lock_the_source_address(make_user):
    make_user("mia", Role.VIEWER, password=PASSWORD)
    for name in ("a", "b"):
        assert _login(name, "wrong", ip="10.0.0.9").status_code == 200
    assert _login("c", "wrong", ip="10.0.0.9").status_code == 429
    assert _login("mia", PASSWORD, ip="10.0.0.9").status_code == 429
    assert _logged_in(_login("mia", PASSWORD, ip="10.0.0.10"))
    [event] = AuditEvent.objects.filter(action="login.locked_out")
    assert event.actor is None and event.target_repr == "address 10.0.0.9"


@override_settings(LOGIN_FAILURES_PER_USERNAME=3, LOGIN_FAILURES_PER_IP=0)
def test_a_successful_login_clears_the_usernames_failures(make_user):
    make_user("nora", Role.VIEWER, password=PASSWORD)
    for _ in range(2):
        _login("nora", "wrong")
    assert _logged_in(_login("nora", PASSWORD))
    for _ in range(2):
        assert _login("nora", "wrong").status_code == 200
    assert _logged_in(_login("nora", PASSWORD))


def test_the_admin_logs_in_through_the_same_rate_limited_page(db):
    response = Client().get("/admin/login/?next=/admin/workloads/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/workloads/"
    assert Client().post("/admin/login/", {"username": "x", "password": "y"}).status_code == 302


# --- Ingestion --------------------------------------------------------------------------------------------
@pytest.fixture
def producer(db, make_user, token_client):
    workload_class = WorkloadClassFactory(slug="limited")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    bot = make_user("bot", Role.VIEWER)
    return lambda: token_client(bot, scopes=["ingest:limited"])[0]


def _event(n: int) -> dict:
    return {"tenant_id": "acme", "document_id": f"doc-{n}", "revision": 1}


@override_settings(INGEST_RATE_LIMIT_REQUESTS=3, INGEST_RATE_LIMIT_WINDOW_SECONDS=60)
def test_ingestion_is_limited_per_token_with_429_and_retry_after(producer):
    client, other = producer(), producer()
    statuses = [client.post("/api/v1/classes/limited/events", _event(n), format="json").status_code for n in range(3)]
    assert statuses == [202, 202, 202]
    refused = client.post("/api/v1/classes/limited/events", _event(99), format="json")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["type"] == "throttled"
    assert not IdempotencyRecord.objects.filter(key="acme:doc-99:1").exists()  # nothing was enqueued
    assert other.post("/api/v1/classes/limited/events", _event(99), format="json").status_code == 202

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert client.post("/api/v1/classes/limited/events", _event(100), format="json").status_code == 202


@override_settings(INGEST_RATE_LIMIT_REQUESTS=1)
def test_an_unauthenticated_request_is_refused_before_it_counts(producer):
    client = producer()
    assert Client().post("/api/v1/classes/limited/events", {}, content_type="application/json").status_code == 401
    assert client.post("/api/v1/classes/limited/events", _event(1), format="json").status_code == 202


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_cache_lets_requests_through(producer, caplog):
    broken = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    client = producer()
    with override_settings(CACHES=broken, INGEST_RATE_LIMIT_REQUESTS=1):
        started = time.monotonic()
        statuses = [client.post("/api/v1/classes/limited/events", _event(n), format="json").status_code for n in (1, 2)]
        assert time.monotonic() - started < 10
    assert statuses == [202, 202]
    assert "rate limit ingest not applied: the cache is unavailable" in caplog.text
