"""Failed-login limits, in fixed windows (see `controlplane.ratelimit`).

Three counters, so that guessing is bounded and one attacker cannot lock out the real user:

- per source address (LOGIN_FAILURES_PER_IP): one address trying many accounts;
- per username from one address (LOGIN_FAILURES_PER_USERNAME): guessing one account's password.
  Keyed by (username, address), so a flood from one address locks that address out of that
  account, not the real user signing in from elsewhere;
- per username from all addresses together (LOGIN_FAILURES_PER_USERNAME_ALL_ADDRESSES): a much
  higher ceiling, so many addresses together still cannot guess without bound. Only an attacker
  with ceiling / per-username addresses can reach it and lock the account for everyone until the
  window ends; `manage.py unlock_login` lifts it (audited).

IPv6 addresses count per /64 (what one host or home usually gets): otherwise each of its 2^64
addresses would bring a fresh allowance.

An attempt is counted atomically BEFORE its password is checked (`login_attempt_begin`): checking
first and counting after let concurrent guesses all pass the check (48 at once got 16-17 password
checks against a limit of 10). A successful login takes its attempt back and clears the
username's failures from that address; a failure that reaches a limit is audited.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache

from controlplane import ratelimit
from workloads.models import AuditResult
from workloads.services.audit import audit_event_record

IP_SCOPE = "login-ip"
USERNAME_FROM_ADDRESS_SCOPE = "login-username-address"
USERNAME_SCOPE = "login-username"

# The name of each limit in audit events (`extra.limit`).
_LIMIT_NAMES = {IP_SCOPE: "address", USERNAME_FROM_ADDRESS_SCOPE: "username_from_address", USERNAME_SCOPE: "username"}


def _normalized(username: str) -> str:
    # "Admin" and "admin " are one counter: varying the spelling must not buy more guesses.
    return username.strip().casefold()[:150]


def _address_identity(ip: str | None) -> str:
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _unlock_generation_key(username: str) -> str:
    digest = hashlib.sha256(_normalized(username).encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"login-unlock-generation:{digest}"


def _unlock_generation(username: str) -> str:
    # Bumped by an unlock: the per-address counters of the username carry it in their identity, so
    # an unlock forgets all of them without having to find them.
    try:
        return str(cache.get(_unlock_generation_key(username), 0))
    except Exception:  # noqa: BLE001 - the counters fail open on a broken cache anyway
        return "0"


def _counters(*, username: str, ip: str | None) -> list[tuple[str, str, ratelimit.Limit]]:
    """(scope, identity, limit) in the order they are counted: the narrowest refusal first, so an
    attempt refused for its address never reaches the username's shared ceiling."""
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    name, address = _normalized(username), _address_identity(ip)
    generation = _unlock_generation(username)
    return [
        (IP_SCOPE, address, ratelimit.Limit(settings.LOGIN_FAILURES_PER_IP, window)),
        (
            USERNAME_FROM_ADDRESS_SCOPE,
            f"{generation}\x00{name}\x00{address}",
            ratelimit.Limit(settings.LOGIN_FAILURES_PER_USERNAME, window),
        ),
        (USERNAME_SCOPE, name, ratelimit.Limit(settings.LOGIN_FAILURES_PER_USERNAME_ALL_ADDRESSES, window)),
    ]


@dataclass
class LoginAttempt:
    """One login attempt, counted on every limit before its password is checked."""

    username: str
    ip: str | None
    started: float
    retry_after: int | None = None  # set when the attempt is refused without checking the password
    counted: list[tuple[str, str, ratelimit.Limit, ratelimit.Verdict]] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.retry_after is not None


def _printable(username: str) -> str:
    # Whatever was typed goes into the audit log, which (PostgreSQL text) cannot hold NUL.
    return username.strip().replace("\x00", "\ufffd")


def _user_named(username: str):
    # The counter ignores case, so the lockout is the account's when only one account matches.
    if "\x00" in username:  # no account has one, and PostgreSQL refuses it in a query
        return None
    users = list(get_user_model().objects.filter(username__iexact=username.strip())[:2])
    return users[0] if len(users) == 1 else None


def login_attempt_begin(*, username: str, ip: str | None) -> LoginAttempt:
    """Count the attempt on each limit, atomically (one cache increment each); if one is past its
    limit the attempt is refused, its password must not be checked, and the counts it added to
    the other limits are taken back (the real user refused by the shared ceiling keeps their
    address's allowance)."""
    attempt = LoginAttempt(username=username, ip=ip, started=time.time())
    for scope, identity, limit in _counters(username=username, ip=ip):
        verdict = ratelimit.hit(scope, identity, limit, now=attempt.started)
        if not verdict.allowed:
            for counted_scope, counted_identity, counted_limit, _ in attempt.counted:
                ratelimit.refund(counted_scope, counted_identity, counted_limit, now=attempt.started)
            attempt.counted.clear()
            attempt.retry_after = verdict.retry_after
            return attempt
        attempt.counted.append((scope, identity, limit, verdict))
    return attempt


def login_attempt_failed(attempt: LoginAttempt) -> int | None:
    """The password was wrong: the attempt stays counted. Audit each limit this failure reached
    (exactly one attempt per window and key reaches it, however many run at once); returns the
    seconds until the next attempt may be made when a limit is now reached, else None."""
    waits = []
    for scope, _identity, limit, verdict in attempt.counted:
        if not limit.enabled or verdict.count < limit.count:
            continue
        waits.append(verdict.retry_after)
        if verdict.count != limit.count:
            continue
        user = _user_named(attempt.username) if scope != IP_SCOPE else None
        target = {
            IP_SCOPE: f"address {attempt.ip}",
            USERNAME_FROM_ADDRESS_SCOPE: f"username {_printable(attempt.username)} from address {attempt.ip}",
            USERNAME_SCOPE: f"username {_printable(attempt.username)}",
        }[scope]
        audit_event_record(
            actor=user,
            action="login.locked_out",
            target_repr=target[:255],
            result=AuditResult.DENIED,
            extra={
                "limit": _LIMIT_NAMES[scope],
                "failures": verdict.count,
                "window_seconds": limit.window,
                "locked_for_seconds": verdict.retry_after,
            },
        )
    return max(waits) if waits else None


def login_attempt_succeeded(attempt: LoginAttempt) -> None:
    """The password was right: the attempt was not a failure, so it is taken back from the
    address's and the username's shared counts, and the username's failures from this address
    are cleared (the address keeps its other failures: one right password must not reset the
    count of an address trying many accounts)."""
    for scope, identity, limit, _verdict in attempt.counted:
        if scope == USERNAME_FROM_ADDRESS_SCOPE:
            ratelimit.reset(scope, identity, limit, now=attempt.started)
        else:
            ratelimit.refund(scope, identity, limit, now=attempt.started)


def login_unlock(*, actor, username: str, address: str | None = None) -> None:
    """Lift the failed-login limits of a username (from every address, and its shared ceiling),
    and of a source address when given; audited."""
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    # A new generation orphans every (username, address) counter; they expire with their window.
    cache.set(_unlock_generation_key(username), time.time_ns(), timeout=2 * window + 60)
    ratelimit.reset(USERNAME_SCOPE, _normalized(username), ratelimit.Limit(1, window))
    if address:
        ratelimit.reset(IP_SCOPE, _address_identity(address), ratelimit.Limit(1, window))
    audit_event_record(
        actor=actor,
        action="login.unlocked",
        target_repr=f"username {_printable(username)}"[:255],
        extra={"username": _printable(username)[:150], "address": address or ""},
    )
