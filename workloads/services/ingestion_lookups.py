"""What every ingestion request looks up, kept per process: its API token (with the token's user and
roles) and its workload class (with whether it is paused, and a migration plan's target class).

Each request read them from PostgreSQL before its group (workloads/services/ingestion_groups.py):
two round trips, plus the connection health check, where the group commit's floor has none. Here
an entry answers a request without a query, and the request's group re-checks every entry its
requests used, in one statement before it claims anything (`still_fresh`, with the stamps of
workloads/freshness.py). An entry whose stamp changed is dropped and its request starts over
uncached (`StaleLookup`), so it is answered exactly as without the cache, from the rows as they
are now: a revoked or expired token, or one whose user was deactivated, is a 401 from that moment
on; a changed role or scope, an edited class, a paused class that sheds load, a deleted class are
all seen by the first group after the change commits. Only the ingestion endpoint reads through
the cache: it is the one path whose group re-checks.

The re-check stands in for the connection health check too: it is the group's first statement,
outside any transaction, so a connection that died while idle fails it with nothing written, and
it runs again once on a new connection (`CONN_HEALTH_CHECKS`' `SELECT 1` is skipped for it).
"""

from __future__ import annotations

import copy
import hmac
import logging
import threading
from dataclasses import dataclass

from django.db import InterfaceError, OperationalError, connection, router
from django.utils import timezone

from controlplane.roles import cache_environment_roles, cache_role
from workloads.freshness import class_with_stamp, current_stamps
from workloads.models import ApiToken, WorkloadClass
from workloads.models.tokens import hash_secret
from workloads.services.tokens import LAST_USED_RESOLUTION, api_token_authenticate_stamped, api_token_touch, role_groups

# Past this many entries a cache starts over (tokens and classes are few; this bounds a flood of them).
MAX_ENTRIES = 1000

logger = logging.getLogger(__name__)


class StaleLookup(Exception):
    """A cached token or class changed before the request's group claimed anything: start over uncached."""


@dataclass(frozen=True)
class Guard:
    """The stamps of what one request read from the caches, for its group to re-check."""

    token: tuple[int, str] | None = None  # (token id, stamp)
    classes: tuple[tuple[int, str], ...] = ()  # (class id, stamp) of the class and a plan's target

    def stamps(self) -> list[tuple[tuple[str, int], str]]:
        tokens = [] if self.token is None else [(("token", self.token[0]), self.token[1])]
        return tokens + [(("class", class_id), stamp) for class_id, stamp in self.classes]


@dataclass
class _TokenEntry:
    token: ApiToken  # its user attached, with the user's roles cached on it
    stamp: str
    last_used_at: object  # datetime | None: the last use this process knows of


@dataclass(frozen=True)
class _ClassEntry:
    workload_class: WorkloadClass  # a plan's target attached (route_to), when it routes
    paused: bool
    stamps: tuple[tuple[int, str], ...]


_tokens: dict[str, _TokenEntry] = {}  # by key id
_classes: dict[str, _ClassEntry] = {}  # by slug
_lock = threading.Lock()  # only for writes; a dict read is atomic


def _remember(cache: dict, key: str, entry) -> None:
    with _lock:
        if len(cache) >= MAX_ENTRIES:
            cache.clear()
        cache[key] = entry


def token_authenticate(raw: str) -> tuple[ApiToken, tuple[int, str]] | None:
    """The active token for this text (as `api_token_authenticate` finds it) and its (id, stamp), or None."""
    parsed = ApiToken.parse_token(raw.strip())
    if parsed is None:
        return None
    key_id, secret = parsed
    entry = _tokens.get(key_id)
    now = timezone.now()
    token = entry.token if entry is not None else None
    if (
        token is None
        or not hmac.compare_digest(token.secret_hash, hash_secret(secret))
        or (token.expires_at is not None and token.expires_at <= now)
    ):
        found = api_token_authenticate_stamped(raw)  # a wrong secret or an unknown key is refused there
        if found is None:
            return None
        token, stamp = found
        entry = _TokenEntry(token, stamp, token.last_used_at)
        _remember(_tokens, key_id, entry)
    elif entry.last_used_at is None or entry.last_used_at < now - LAST_USED_RESOLUTION:
        entry.last_used_at = now  # first, so the other threads of the process do not write it too
        api_token_touch(token, now)
    return _own_copy(entry.token), (entry.token.pk, entry.stamp)


def _own_copy(token: ApiToken) -> ApiToken:
    """The request's own instances (the cached ones are shared by the process's threads)."""
    mine = copy.copy(token)
    mine.user = copy.copy(token.user)
    cache_role(mine.user, token.user._controlplane_role)
    cache_environment_roles(mine.user, token.user._controlplane_environment_roles)
    return mine


def workload_class_for_ingestion(slug: str) -> tuple[WorkloadClass, bool, tuple[tuple[int, str], ...]] | None:
    """The class with this slug, whether it is paused, and the stamps to re-check; None when there is none."""
    entry = _classes.get(slug)
    if entry is None:
        entry = _class_entry(slug)
        if entry is None:
            return None
        _remember(_classes, slug, entry)
    return copy.copy(entry.workload_class), entry.paused, entry.stamps


def _class_entry(slug: str) -> _ClassEntry | None:
    using = router.db_for_read(WorkloadClass)
    found = class_with_stamp("slug", slug, using=using)
    if found is None:
        return None
    workload_class, paused, stamp = found
    stamps = [(workload_class.pk, stamp)]
    if workload_class.route_percent and workload_class.route_to_id:
        target = class_with_stamp("id", workload_class.route_to_id, using=using)
        if target is None:
            return None  # its target is going away: no entry; the request reads it the ORM's way
        workload_class.route_to = target[0]
        stamps.append((target[0].pk, target[2]))
    return _ClassEntry(workload_class, paused, tuple(stamps))


def forget(*, key_id: str | None = None, slug: str | None = None) -> None:
    with _lock:
        if key_id is not None:
            _tokens.pop(key_id, None)
        if slug is not None:
            _classes.pop(slug, None)


def forget_all() -> None:
    with _lock:
        _tokens.clear()
        _classes.clear()


def stale_guards(guards: list[Guard]) -> set[Guard]:
    """The guards of `guards` with an entry that changed, in one statement. Outside a transaction
    it is the first statement of the group on this connection: it checks the connection's health
    too (a dead connection is replaced and the statement runs again; it wrote nothing)."""
    wanted = {key for guard in guards for key, _stamp in guard.stamps()}
    if not wanted:
        return set()

    def check() -> dict[tuple[str, int], str]:
        return current_stamps(
            sorted(row_id for kind, row_id in wanted if kind == "token"),
            sorted(row_id for kind, row_id in wanted if kind == "class"),
            now=timezone.now(),
            role_groups=role_groups(),
            using=router.db_for_read(ApiToken),
        )

    if connection.in_atomic_block:
        current = check()
    else:
        connection.health_check_done = True  # this statement is the health check (Django's is a SELECT 1)
        try:
            current = check()
        except (InterfaceError, OperationalError):
            logger.info("The database connection failed its first statement; reconnecting", exc_info=True)
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may fail too; it is gone either way
                logger.debug("closing a broken database connection failed", exc_info=True)
            current = check()
    return {guard for guard in guards if any(current.get(key) != stamp for key, stamp in guard.stamps())}
