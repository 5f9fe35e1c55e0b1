"""Failed-login limits that one attacker cannot turn against the real user, counted atomically
before the password is checked, and lifted by an admin (`manage.py unlock_login`)."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings

from controlplane.roles import Role
from workloads.models import AuditEvent

PASSWORD = "correct-horse-battery-9"


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def _login(username: str, password: str, *, ip: str):
    return Client(REMOTE_ADDR=ip).post("/accounts/login/", {"username": username, "password": password})


def _logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


@override_settings(LOGIN_FAILURES_PER_USERNAME=3, LOGIN_FAILURES_PER_USERNAME_ALL_ADDRESSES=20, LOGIN_FAILURES_PER_IP=0)
def test_a_flood_from_one_address_does_not_lock_out_the_user_from_another(make_user):
    make_user("admin", Role.ADMIN, password=PASSWORD)
    statuses = [_login("admin", f"guess-{n}", ip="203.0.113.66").status_code for n in range(12)]
    assert statuses[:2] == [200, 200] and set(statuses[2:]) == {429}
    assert _login("admin", PASSWORD, ip="203.0.113.66").status_code == 429  # the attacker's address stays locked
    assert _logged_in(_login("admin", PASSWORD, ip="198.51.100.7"))  # the real user is not
    [event] = AuditEvent.objects.filter(action="login.locked_out")
    assert event.extra["limit"] == "username_from_address"
    assert event.target_repr == "username admin from address 203.0.113.66"


@override_settings(LOGIN_FAILURES_PER_USERNAME=2, LOGIN_FAILURES_PER_USERNAME_ALL_ADDRESSES=4, LOGIN_FAILURES_PER_IP=0)
def test_many_addresses_together_reach_the_ceiling_and_an_admin_unlocks(make_user):
    user = make_user("lena", Role.VIEWER, password=PASSWORD)
    for address in ("203.0.113.1", "203.0.113.2"):
        for _ in range(2):
            _login("lena", "wrong", ip=address)
    refused = _login("lena", PASSWORD, ip="198.51.100.7")
    assert refused.status_code == 429 and not _logged_in(refused)
    ceiling = AuditEvent.objects.get(action="login.locked_out", extra__limit="username")
    assert ceiling.actor == user and ceiling.extra["failures"] == 4

    call_command("unlock_login", "Lena")  # the counters ignore case, so does the unlock
    assert _logged_in(_login("lena", PASSWORD, ip="198.51.100.7"))
    assert _login("lena", "wrong", ip="203.0.113.1").status_code == 200  # its per-address count is gone too
    [unlock] = AuditEvent.objects.filter(action="login.unlocked")
    assert (unlock.actor, unlock.via, unlock.target_repr) == (None, "cli", "username Lena")


@override_settings(LOGIN_FAILURES_PER_USERNAME=0, LOGIN_FAILURES_PER_IP=2)
def test_unlock_clears_an_address_and_refuses_a_malformed_one(db):
    for name in ("a", "b"):
        _login(name, "wrong", ip="203.0.113.9")
    assert _login("c", "wrong", ip="203.0.113.9").status_code == 429
    call_command("unlock_login", "c", address="203.0.113.9")
    assert _login("c", "wrong", ip="203.0.113.9").status_code == 200
    with pytest.raises(Exception, match="must be an IPv4 or IPv6 address"):
        call_command("unlock_login", "c", address="not-an-address")


@override_settings(LOGIN_FAILURES_PER_USERNAME=0, LOGIN_FAILURES_PER_IP=3)
def test_ipv6_addresses_count_per_64_network(db):
    for host in ("::1", "::2"):
        assert _login(f"user-{host}", "wrong", ip=f"2001:db8:1:2{host}").status_code == 200
    assert _login("user-3", "wrong", ip="2001:db8:1:2::3").status_code == 429
    assert _login("user-4", "wrong", ip="2001:db8:1:3::1").status_code == 200  # another /64


# --- Concurrency: the count is taken before the password is checked ----------------------------------------
@pytest.fixture
def shared_cache():
    """Redis, as production runs it, under a key prefix of this test only."""
    redis = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
            "KEY_PREFIX": f"test-login-race-{uuid.uuid4().hex}",
        }
    }
    with override_settings(CACHES=redis):
        yield
        cache.clear()


class _CountingPasswordChecks:
    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, **kwargs):
        with self._lock:
            self.count += 1


# A real (salted, iterated) hash, cheaper than production's so that 48 checks stay quick.
@override_settings(
    LOGIN_FAILURES_PER_USERNAME=10,
    LOGIN_FAILURES_PER_USERNAME_ALL_ADDRESSES=0,
    LOGIN_FAILURES_PER_IP=0,
    PASSWORD_HASHERS=["tests.hardening.test_login_limits.QuickPBKDF2PasswordHasher"],
)
def test_concurrent_wrong_passwords_get_no_more_checks_than_the_limit(transactional_db, make_user, shared_cache):
    make_user("mallory-target", Role.VIEWER, password=PASSWORD)
    checks = _CountingPasswordChecks()
    user_login_failed.connect(checks, dispatch_uid="count-failed-checks")
    user_logged_in.connect(checks, dispatch_uid="count-successful-checks")
    start = threading.Barrier(48)
    statuses = []

    def guess(n: int) -> None:
        try:
            client = Client(REMOTE_ADDR="203.0.113.5")
            start.wait(timeout=30)
            response = client.post("/accounts/login/", {"username": "mallory-target", "password": f"guess-{n}"})
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(48)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        user_login_failed.disconnect(dispatch_uid="count-failed-checks")
        user_logged_in.disconnect(dispatch_uid="count-successful-checks")
    assert len(statuses) == 48
    assert checks.count == 10
    assert statuses.count(429) == 48 - 9  # the tenth failure already answers 429
    assert AuditEvent.objects.filter(action="login.locked_out").count() == 1


from django.contrib.auth.hashers import PBKDF2PasswordHasher  # noqa: E402


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 20_000
