"""Group commit: concurrent ingestion requests of one process share one claim-and-publish.

Most of a single event's cost was its own transaction (the claim, the publish and a commit that
waits for the disk, or a publish round trip to Pub/Sub). Here the request threads of a process
hand their validated events over and wait; one of them at a time, the leader, takes every request
waiting at that moment and runs them through `claim_and_publish` together (one claim statement
per class, one publish per destination, one commit), then hands the lead to the next waiting
thread, if any, and answers its own request. No thread of our own: the leader is a request
thread, so a lone request runs at once, on its own database connection, with no hand-over.

Each request gets its own outcome:

- a request answers only once its own events are durable, with its own results;
- a failure of the group as a whole (a database error, a topic that does not exist) is retried
  with each request alone, so one bad request never fails the others; the failing one hears
  its own error. Only what did not happen is retried: when the group held local-queue claims
  and networked ones (Pub/Sub, Celery) and the networked part failed after the local part had
  committed, the committed claims keep their results (accepted, not duplicates of themselves);
- a key that an earlier request of the group carries (the same event sent twice at once) waits
  for the next group, where it finds the first one's committed receipt (a duplicate with the same
  message id, or a conflict).

A caller inside a transaction (`transaction.atomic`, a test's TestCase) runs alone, inline: a
group would otherwise commit or roll back with that caller's transaction.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from django.db import connection

from workloads.services.ingestion_claims import Claim, claim_and_publish

# The events one group claims at most (a batch holds up to 1000): a bigger group would only make
# its statements and its requests' wait longer.
MAX_GROUP_EVENTS = 2000

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Member:
    """One request waiting: its claims, and how it is woken (done, or made the leader)."""

    claims: list[Claim]
    wake: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    done: bool = False
    error: BaseException | None = None

    @property
    def events(self) -> int:
        return sum(len(claim.candidates) for claim in self.claims)

    @property
    def settled(self) -> bool:
        return all(claim.settled for claim in self.claims)

    @property
    def keys(self) -> set[tuple[int, str]]:
        return {(claim.workload_class.pk, c.key) for claim in self.claims for c in claim.candidates}


class GroupCommitter:
    def __init__(self):
        self._lock = threading.Lock()
        self._waiting: list[_Member] = []
        self._leading = False  # a thread is running groups (its lead passes on until no one waits)

    def commit(self, claims: list[Claim]) -> None:
        """Claim and publish one request's claims, alone or with the other requests waiting at
        that moment; returns once they are durable, each claim with its results or its own error.
        Raises when the request failed as a whole."""
        if connection.in_atomic_block:
            claim_and_publish(claims)
            return
        member = _Member(claims)
        with self._lock:
            self._waiting.append(member)
            leads = not self._leading
            self._leading = True
        if not leads:
            member.wake.wait()
            leads = member.leads
        if leads:
            self._lead(member)
        if member.error is not None:
            raise member.error

    def _lead(self, me: _Member) -> None:
        try:
            while not me.done:
                self._run(self._next_group())
        finally:
            with self._lock:
                if self._waiting:
                    successor = self._waiting[0]
                    successor.leads = True
                    successor.wake.set()
                else:
                    self._leading = False

    def _next_group(self) -> list[_Member]:
        """The requests waiting now, in arrival order, up to MAX_GROUP_EVENTS; one whose key an
        earlier one of the group carries stays for the next group."""
        with self._lock:
            group: list[_Member] = []
            later: list[_Member] = []
            keys: set[tuple[int, str]] = set()
            events = 0
            for member in self._waiting:
                if group and events + member.events > MAX_GROUP_EVENTS:
                    later.append(member)
                    continue
                mine = member.keys
                if keys & mine:
                    later.append(member)
                    continue
                keys |= mine
                events += member.events
                group.append(member)
            self._waiting = later
        return group

    def _run(self, group: list[_Member]) -> None:
        logger.debug("group of %d requests, %d events", len(group), sum(member.events for member in group))
        try:
            try:
                claim_and_publish([claim for member in group for claim in member.claims])
            except Exception as exc:  # noqa: BLE001 - retried alone below, or the lone request's own error
                _drop_broken_connection()
                if len(group) == 1:
                    group[0].error = exc
                else:
                    logger.warning(
                        "A group of %d ingestion requests failed (%r); retrying each alone what of it did not commit",
                        len(group),
                        exc,
                    )
                    for member in group:
                        if not member.settled:
                            self._run_alone(member)
        except BaseException as exc:  # the process is going down: no request waits forever
            for member in group:
                if member.error is None and not member.done:
                    member.error = exc
            raise
        finally:
            for member in group:
                member.done = True
                member.wake.set()

    @staticmethod
    def _run_alone(member: _Member) -> None:
        try:
            claim_and_publish(member.claims)
        except Exception as exc:  # noqa: BLE001 - this request's own failure, answered to it
            _drop_broken_connection()
            member.error = exc


def _drop_broken_connection() -> None:
    """After a database error, a connection the server dropped is closed, so the next attempt
    (the retries alone, the next group) opens a new one."""
    try:
        connection.close_if_unusable_or_obsolete()
    except Exception:  # noqa: BLE001 - closing a dead connection may fail too; it is gone either way
        logger.debug("closing a broken database connection failed", exc_info=True)


group_committer = GroupCommitter()
