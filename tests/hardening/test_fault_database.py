"""The database connection drops in the middle of an ingestion request: PostgreSQL terminates the
request's backend (pg_terminate_backend from another connection) just before, or just after, one
of the statements of the transaction that claims the keys, publishes and records the receipts.
The client gets a 503 with Retry-After and a readable JSON error, nothing of the request is left
behind (no idempotency key, no queued message), and sending the events again is accepted as new.
(A request alone is its own group and leads it on its own connection; a drop in a group of
several: tests/hardening/test_ingestion_group_faults.py.)"""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from workloads.models import IdempotencyRecord
from workloads.providers import get_providers
from workloads.providers.local.models import LocalDelivery, LocalMessage
from workloads.providers.specs import queue_spec

EVENT = {"tenant_id": "acme", "document_id": "doc-1", "revision": 1}
URL = "/api/v1/classes/fragile/events"


def _terminate_own_backend() -> None:
    """Kill this connection's server process from another connection, and wait until it is gone."""
    pid = connection.connection.info.backend_pid
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"]
    ) as killer:
        killer.autocommit = True
        [(terminated,)] = killer.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchall()
        assert terminated


class DropConnection:
    """An execute wrapper that kills the connection once, before or after the first statement
    containing `sql`."""

    def __init__(self, sql: str, when: str):
        self.sql, self.when, self.fired = sql, when, False

    def __call__(self, execute, sql, params, many, context):
        if self.fired or self.sql not in sql:
            return execute(sql, params, many, context)
        self.fired = True
        if self.when == "before":
            _terminate_own_backend()
            return execute(sql, params, many, context)
        result = execute(sql, params, many, context)
        _terminate_own_backend()  # the statement ran; the COMMIT that follows will not
        return result


@pytest.fixture
def producer(transactional_db, make_user, token_client):
    workload_class = WorkloadClassFactory(slug="fragile")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    client, _token = token_client(make_user("producer", Role.VIEWER), scopes=["ingest:fragile"])
    return client


PAIR = [EVENT, {**EVENT, "document_id": "doc-2"}]


@pytest.mark.parametrize("body", [EVENT, PAIR])
@pytest.mark.parametrize(
    ("sql", "when"),
    [
        ('INSERT INTO "workloads_idempotencyrecord"', "before"),  # claiming the keys
        ('INSERT INTO "workloads_localmessage"', "before"),  # publishing
        ('INSERT INTO "workloads_localdelivery"', "after"),  # published, keys not updated
        ('UPDATE "workloads_idempotencyrecord"', "after"),  # all written, before COMMIT
    ],
)
def test_a_dropped_connection_is_a_503_and_leaves_nothing_half_written(producer, body, sql, when):
    drop = DropConnection(sql, when)
    with connection.execute_wrapper(drop):
        response = producer.post(URL, body, format="json")
    assert drop.fired, f"no statement contained {sql!r}"
    assert response.status_code == 503, response.content
    assert response.json() == {
        "type": "database_unavailable",
        "detail": "The database is unreachable; nothing was saved. Retry shortly.",
    }
    assert int(response["Retry-After"]) > 0

    # What the end of every request does in production (Django's test client skips it): the
    # broken connection is thrown away, and the next query opens a new one.
    connection.close_if_unusable_or_obsolete()
    assert not IdempotencyRecord.objects.exists()
    assert not LocalMessage.objects.exists() and not LocalDelivery.objects.exists()

    retried = producer.post(URL, body, format="json")
    assert retried.status_code == 202, retried.content
    events = len(body) if isinstance(body, list) else 1
    assert LocalMessage.objects.count() == events and IdempotencyRecord.objects.count() == events


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize(
    "sql",
    [
        'FROM "django_session"',  # the first query: nothing about the user is known yet
        'FROM "workloads_workloadclass"',  # the page's own data
    ],
)
def test_a_page_whose_connection_drops_says_so_with_a_503(transactional_db, make_user, sql, htmx):
    from django.test import Client

    WorkloadClassFactory(slug="fragile")
    browser = Client()
    browser.force_login(make_user("watcher", Role.VIEWER))
    drop = DropConnection(sql, "before")
    headers = {"HX-Request": "true"} if htmx else {}
    with connection.execute_wrapper(drop):
        response = browser.get("/", headers=headers)
    assert drop.fired
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    page = response.content.decode()
    assert "could not reach its database" in page and "DATABASE_URL" in page
    assert ("<html" in page) is not htmx  # htmx swaps in a fragment, a browser gets a whole page
    assert "Traceback" not in page and "psycopg" not in page

    connection.close_if_unusable_or_obsolete()
    assert browser.get("/").status_code == 200  # the next request opens a new connection
