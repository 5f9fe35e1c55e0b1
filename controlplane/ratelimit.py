"""Fixed-window counters in Django's cache, for rate limits (login failures, ingestion requests).

A window is `window` seconds long and aligned to the epoch; each (scope, identity, window) has one
counter that expires with its window. Fixed windows let a client send up to twice the limit
around a boundary, which is acceptable for abuse protection and costs one cache round trip.

With the default local-memory cache every process counts on its own (a limit per web worker);
set CACHE_URL (or REDIS_URL) to count across processes and machines.

If the cache is unreachable the request is let through and a warning logged: a broken cache
must not lock everybody out of logging in or stop ingestion.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from django.core.cache import cache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    count: int  # events allowed per window; 0 turns the limit off
    window: int  # seconds

    @property
    def enabled(self) -> bool:
        return self.count > 0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int  # events counted in this window so far
    retry_after: int  # seconds until the window ends (always >= 1)


def _key(scope: str, identity: str, limit: Limit, now: float) -> tuple[str, int]:
    index = int(now // limit.window)
    # Hashed: identities are user input (usernames), and cache keys have length and charset limits.
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    retry_after = max(1, math.ceil((index + 1) * limit.window - now))
    return f"ratelimit:{scope}:{limit.window}:{digest}:{index}", retry_after


def hit(scope: str, identity: str, limit: Limit, *, now: float | None = None) -> Verdict:
    """Count one event; allowed while the count stays within the limit."""
    if not limit.enabled:
        return Verdict(True, 0, 1)
    now = time.time() if now is None else now
    key, retry_after = _key(scope, identity, limit, now)
    try:
        if cache.add(key, 1, timeout=limit.window + 1):
            count = 1
        else:
            try:
                count = cache.incr(key)
            except ValueError:  # it expired between add and incr: this is the window's first event
                cache.set(key, 1, timeout=limit.window + 1)
                count = 1
    except Exception:  # noqa: BLE001 - any cache failure: fail open
        logger.warning("rate limit %s not applied: the cache is unavailable", scope, exc_info=True)
        return Verdict(True, 0, 1)
    return Verdict(count <= limit.count, count, retry_after)


def peek(scope: str, identity: str, limit: Limit, *, now: float | None = None) -> Verdict:
    """The current count without adding to it; allowed while it is below the limit."""
    if not limit.enabled:
        return Verdict(True, 0, 1)
    now = time.time() if now is None else now
    key, retry_after = _key(scope, identity, limit, now)
    try:
        count = cache.get(key, 0)
    except Exception:  # noqa: BLE001
        logger.warning("rate limit %s not checked: the cache is unavailable", scope, exc_info=True)
        return Verdict(True, 0, 1)
    return Verdict(count < limit.count, count, retry_after)


def refund(scope: str, identity: str, limit: Limit, *, now: float) -> None:
    """Take back one event counted by `hit(..., now=now)` (the same window), e.g. an attempt that
    was counted up front and turned out not to be one that the limit is about."""
    if not limit.enabled:
        return
    key, _ = _key(scope, identity, limit, now)
    try:
        cache.decr(key)
    except ValueError:  # the window's counter is gone already: nothing to take back
        pass
    except Exception:  # noqa: BLE001
        logger.warning("rate limit %s not refunded: the cache is unavailable", scope, exc_info=True)


def reset(scope: str, identity: str, limit: Limit, *, now: float | None = None) -> None:
    if not limit.enabled:
        return
    now = time.time() if now is None else now
    key, _ = _key(scope, identity, limit, now)
    try:
        cache.delete(key)
    except Exception:  # noqa: BLE001
        logger.warning("rate limit %s not reset: the cache is unavailable", scope, exc_info=True)
