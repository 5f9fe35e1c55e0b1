"""Failed-login limits: per username and per source address, in fixed windows (see
`controlplane.ratelimit`). Past either limit, logins for that username or from that address are
refused until the window ends, even with the right password, so a password cannot be guessed by
trying many; the moment a limit is reached is written to the audit log.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model

from controlplane import ratelimit
from workloads.models import AuditResult
from workloads.services.audit import audit_event_record

USERNAME_SCOPE = "login-username"
IP_SCOPE = "login-ip"


def _normalized(username: str) -> str:
    # "Admin" and "admin " are one counter: varying the spelling must not buy more guesses.
    return username.strip().casefold()[:150]


def _counters(*, username: str, ip: str | None) -> list[tuple[str, str, ratelimit.Limit]]:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    counters = [(USERNAME_SCOPE, _normalized(username), ratelimit.Limit(settings.LOGIN_FAILURES_PER_USERNAME, window))]
    if ip:
        counters.append((IP_SCOPE, ip, ratelimit.Limit(settings.LOGIN_FAILURES_PER_IP, window)))
    return counters


def _printable(username: str) -> str:
    # Whatever was typed goes into the audit log, which (PostgreSQL text) cannot hold NUL.
    return username.strip().replace("\x00", "\ufffd")


def _user_named(username: str):
    # The counter ignores case, so the lockout is the account's when only one account matches.
    if "\x00" in username:  # no account has one, and PostgreSQL refuses it in a query
        return None
    users = list(get_user_model().objects.filter(username__iexact=username.strip())[:2])
    return users[0] if len(users) == 1 else None


def login_refusal(*, username: str, ip: str | None) -> int | None:
    """Seconds until a login for this username from this address may be tried again, or None."""
    waits = [
        verdict.retry_after
        for scope, identity, limit in _counters(username=username, ip=ip)
        if not (verdict := ratelimit.peek(scope, identity, limit)).allowed
    ]
    return max(waits) if waits else None


def login_failure_record(*, username: str, ip: str | None) -> None:
    """Count a failed login; audit the failure that reaches a limit (once per window and key)."""
    for scope, identity, limit in _counters(username=username, ip=ip):
        verdict = ratelimit.hit(scope, identity, limit)
        if not limit.enabled or verdict.count != limit.count:
            continue
        user = _user_named(username) if scope == USERNAME_SCOPE else None
        audit_event_record(
            actor=user,
            action="login.locked_out",
            target_repr=(f"username {_printable(username)}" if scope == USERNAME_SCOPE else f"address {ip}")[:255],
            result=AuditResult.DENIED,
            extra={
                "limit": "username" if scope == USERNAME_SCOPE else "address",
                "failures": verdict.count,
                "window_seconds": limit.window,
                "locked_for_seconds": verdict.retry_after,
            },
        )


def login_success_record(*, username: str) -> None:
    """A successful login clears its username's failures (not the address's: one right password
    must not reset the count of an address trying many accounts)."""
    [(scope, identity, limit), *_] = _counters(username=username, ip=None)
    ratelimit.reset(scope, identity, limit)
