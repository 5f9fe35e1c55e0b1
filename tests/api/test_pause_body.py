"""The pause endpoint's body (workloads/api/pauses.py): `paused` comes from the hold the call
already read or wrote, not from one more query. Each step below checks the body against what the
database says right after the call (the open hold, the way `paused` was computed before) and
counts the call's reads of the holds table: one fewer than before, in every case."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.workloads.pools import pooled_class, run_pending
from workloads.models import PoolHold
from workloads.services import pauses
from workloads.services.incidents import pool_holds_expire

URL = "/api/v1/classes/doc-render/pause"


@pytest.fixture
def call(db, operator, client_as):
    workload_class = pooled_class("doc-render", instances=3, tier="standard")
    client = client_as(operator)

    def request(method: str, body: dict | None = None, *, status: int, paused: bool, hold_reads: int) -> dict:
        with CaptureQueriesContext(connection) as queries:
            response = getattr(client, method)(URL, body, format="json")
        assert response.status_code == status, response.content
        answer = response.json()
        # What the body said before: whether the database holds an open hold for the class now.
        assert answer["paused"] is (pauses.open_hold(workload_class) is not None) is paused
        reads = [sql for q in queries.captured_queries if _reads_holds(sql := q["sql"])]
        assert len(reads) == hold_reads, reads
        return answer

    return request


def _reads_holds(sql: str) -> bool:
    """A SELECT from the holds table (not one that only joins it in a condition)."""
    return sql.startswith("SELECT") and '"workloads_poolhold"' in sql.split(" WHERE ")[0]


def test_paused_is_the_same_answer_for_every_step(call):
    never = call("get", status=200, paused=False, hold_reads=2)  # no hold, no last hold (was 3)
    assert never["hold"] is None

    paused = call("post", {"reason": "bad deploy"}, status=202, paused=True, hold_reads=2)  # was 3
    assert paused["changed"] and paused["hold"]["state"] == "active"
    again = call("post", {"reason": "bad deploy"}, status=200, paused=True, hold_reads=1)  # was 2
    assert not again["changed"] and again["hold"]["id"] == paused["hold"]["id"]
    assert call("get", status=200, paused=True, hold_reads=1)["hold"]["id"] == paused["hold"]["id"]  # was 2
    run_pending()
    call("patch", {"expires_in_minutes": 600}, status=200, paused=True, hold_reads=1)  # was 2

    # Resumed: the hold is restoring until its action ran, and a restoring hold is still open.
    resumed = call("delete", status=202, paused=True, hold_reads=3)  # was 4
    assert resumed["hold"]["state"] == "restoring"
    call("delete", status=200, paused=True, hold_reads=1)  # its restore is under way (was 2)
    run_pending()
    resumed_again = call("delete", status=200, paused=False, hold_reads=2)  # was 3
    assert not resumed_again["changed"] and resumed_again["hold"]["state"] == "restored"
    call("get", status=200, paused=False, hold_reads=2)  # was 3


def test_a_hold_at_n_instances_counts_as_paused(call):
    held = call("post", {"reason": "hold steady", "instances": 2}, status=202, paused=True, hold_reads=2)
    assert held["hold"]["hold_count"] == 2
    call("get", status=200, paused=True, hold_reads=1)
    run_pending()
    call("delete", status=202, paused=True, hold_reads=3)
    run_pending()
    call("get", status=200, paused=False, hold_reads=2)


def test_past_its_expiry(call):
    call("post", {"reason": "bad deploy"}, status=202, paused=True, hold_reads=2)
    run_pending()
    PoolHold.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    # Past its expiry but not expired yet (the tick has not run): still paused, as before.
    call("get", status=200, paused=True, hold_reads=1)
    pool_holds_expire(now=timezone.now())
    assert call("get", status=200, paused=True, hold_reads=1)["hold"]["state"] == "restoring"
    run_pending()
    assert call("get", status=200, paused=False, hold_reads=2)["hold"]["state"] == "restored"
