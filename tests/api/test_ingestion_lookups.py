"""The ingestion endpoint's per-process cache of tokens and classes (workloads/services/ingestion_lookups.py):
a warm request reads neither, and every change is seen by the very next request: a revoked token,
a deactivated user, a role granted or taken, a class edited, paused or deleted."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from tests.hardening.test_fault_database import _terminate_own_backend
from workloads.models import IdempotencyRecord, PoolHold, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.specs import queue_spec
from workloads.services.tokens import api_token_issue, api_token_revoke

URL = "/api/v1/classes/cached-jobs/events"


@pytest.fixture
def cached_class(db):
    workload_class = WorkloadClassFactory(slug="cached-jobs", shed_load_when_paused=True)
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    return workload_class


@pytest.fixture
def producer(db, make_user):
    user = make_user("cached-producer", Role.VIEWER)
    token, raw = api_token_issue(actor=None, user=user, name="producer", scopes=["ingest:cached-jobs"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client, token


class Counter:
    n = 0


def _post(client, document_id: str | None = None, **fields):
    Counter.n += 1
    event = {"tenant_id": "acme", "document_id": document_id or f"doc-{Counter.n}", "revision": 1, **fields}
    return client.post(URL, event, format="json")


def _lookups(queries) -> list[str]:
    """The token and class lookups among the statements of a request."""
    return [
        q["sql"]
        for q in queries
        if ('"key_id" =' in q["sql"]) or ('"slug" =' in q["sql"] and "workloads_workloadclass" in q["sql"])
    ]


def test_a_warm_request_reads_neither_token_nor_class(cached_class, producer):
    client, _token = producer
    with CaptureQueriesContext(connection) as cold:
        assert _post(client).status_code == 202
    assert len(_lookups(cold.captured_queries)) == 2  # both read once
    with CaptureQueriesContext(connection) as warm:
        response = _post(client)
    assert response.status_code == 202, response.content
    assert _lookups(warm.captured_queries) == []
    # Instead, one statement re-checks both, before the claim.
    checks = [q["sql"] for q in warm.captured_queries if "'token' AS kind" in q["sql"]]
    assert len(checks) == 1 and "workloads_workloadclass" in checks[0]


def test_a_revoked_token_stops_working_at_once(cached_class, producer, admin_user):
    client, token = producer
    assert _post(client).status_code == 202
    assert _post(client).status_code == 202  # cached
    api_token_revoke(actor=admin_user, token=token)
    response = _post(client)
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert IdempotencyRecord.objects.count() == 2  # nothing of the refused request


def test_an_expired_token_stops_working_at_once(cached_class, producer):
    client, token = producer
    assert _post(client).status_code == 202
    type(token).objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _post(client).status_code == 401


def test_a_deactivated_user_and_a_role_taken_away_are_seen_at_once(cached_class, producer):
    client, token = producer
    assert _post(client).status_code == 202
    token.user.groups.clear()
    assert _post(client).status_code == 403
    token.user.groups.add(Group.objects.get(name=Role.VIEWER.group_name))
    assert _post(client).status_code == 202  # a refusal is re-checked too: the role is back
    type(token.user).objects.filter(pk=token.user.pk).update(is_active=False)
    assert _post(client).status_code == 401


def test_an_edited_class_is_seen_at_once(cached_class, producer):
    client, _token = producer
    assert _post(client).status_code == 202
    cached_class.payload_schema = {**cached_class.payload_schema, "additionalProperties": False}
    cached_class.save()
    response = _post(client, extra="field")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["code"] == "additionalProperties"
    cached_class.payload_schema = {**cached_class.payload_schema, "additionalProperties": True}
    cached_class.save()
    assert _post(client, extra="field").status_code == 202  # the refusal did not stick either


def test_a_paused_class_that_sheds_load_refuses_at_once_and_accepts_once_resumed(cached_class, producer):
    client, _token = producer
    assert _post(client).status_code == 202
    hold = PoolHold.objects.create(
        workload_class=cached_class,
        reason="incident",
        expires_at=timezone.now() + timedelta(hours=1),
        bounds_min=0,
        bounds_max=1,
        bounds_source="baseline",
        created_by_label="ops",
        created_at=timezone.now(),
    )
    response = _post(client)
    assert response.status_code == 503 and response.json()["type"] == "class_paused"
    hold.state = "restored"
    hold.save()
    assert _post(client).status_code == 202


def test_a_deleted_class_is_a_404_at_once(cached_class, producer):
    client, _token = producer
    assert _post(client, **{"revision": "not a number"}).status_code == 400  # looked up, nothing stored
    WorkloadClass.objects.filter(pk=cached_class.pk).delete()
    assert _post(client).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_died_while_idle_is_replaced_without_losing_the_request(make_user):
    """The group's re-check is its first statement and stands in for the health check: on a
    connection whose server went away it fails, with nothing written, and runs again on a new one."""
    workload_class = WorkloadClassFactory(slug="cached-jobs")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    _token, raw = api_token_issue(
        actor=None, user=make_user("idle-producer", Role.VIEWER), name="p", scopes=["ingest:cached-jobs"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert _post(client).status_code == 202
    _terminate_own_backend()  # idle: between two requests
    old = connection.connection
    response = _post(client)
    assert response.status_code == 202, response.content
    assert connection.connection is not old
    assert IdempotencyRecord.objects.count() == 2
