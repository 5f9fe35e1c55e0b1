"""What schemathesis found, pinned down: each input once made a 5xx or an undocumented answer. The
bounded CI run may not generate these exact values again, so they are kept here."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from workloads.models import AuditEvent, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.specs import queue_spec


@pytest.fixture
def admin_api(db, make_user, token_client):
    WorkloadClassFactory(slug="found-class")
    client, _token = token_client(make_user("finder", Role.ADMIN))
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/audit-events/?occurred_after=0581-08-20T08:25:08.521383-17:04",  # PostgreSQL allows +-15:59
        "/api/v1/dead-letters/?seen_after=0492-08-18T01:48:53.754448-22:24",
        "/api/v1/dead-letter-groups/?seen_before=7976-09-19T10:58:39%2B17:40",
        "/api/v1/alerts/?opened_after=0529-05-13T21:18:44.179761-21:15",
        "/api/v1/actions/?created_before=2026-01-01T00:00:00%2B23:59",
    ],
)
def test_date_time_filters_take_any_offset(admin_api, url):
    assert admin_api.get(url).status_code == 200


def test_a_date_time_filter_out_of_range_is_a_400(admin_api):
    response = admin_api.get("/api/v1/audit-events/?occurred_after=0001-01-01T00:00:00%2B01:00")
    assert response.status_code == 400 and "occurred_after" in response.json()["errors"]


@pytest.mark.parametrize("url", ["/api/v1/actions/null,null/steps/", "/api/v1/no-such-endpoint/", "/api/v1/tokens/x/"])
def test_unknown_api_urls_are_json_404s(admin_api, url):
    response = admin_api.get(url)
    assert response.status_code == 404
    assert response.json()["type"] == "not_found"


def test_an_unknown_format_of_the_cost_report_is_a_400(admin_api):
    response = admin_api.get("/api/v1/cost/?format=AAA")
    assert response.status_code == 400 and response.json()["errors"] == {
        "format": ['"AAA" is not a valid choice. Valid choices: "json", "csv".']
    }


def test_comparing_an_unknown_class_is_a_400_on_that_parameter(admin_api):
    response = admin_api.get(
        "/api/v1/comparisons?a_class=found-class&b_class=baseline&a_start=2026-01-01T00:00:00Z"
        "&a_end=2026-01-02T00:00:00Z&b_start=2026-01-01T00:00:00Z&b_end=2026-01-02T00:00:00Z"
    )
    assert response.status_code == 400 and list(response.json()["errors"]) == ["b_class"]


def test_a_json_null_event_is_a_400_in_the_documented_shape(admin_api):
    response = admin_api.post("/api/v1/classes/found-class/events", "null", content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert (body["type"], body["status"], body["errors"][0]["code"]) == ("validation_error", "rejected", "type")


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/dead-letters/discard/", {"workload_class": "\x00s.", "ids": [1]}),  # a lookup by slug
        ("/api/v1/tokens/", {"name": "bot", "user": "ro\x00ot"}),
        ("/api/v1/triage-rules/", {"name": "r", "error_signature": "s", "action": "hold", "match": {"k\x00": 1}}),
    ],
)
def test_nul_characters_in_a_body_are_a_400_not_a_database_error(admin_api, url, body):
    response = admin_api.post(url, body, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "type": "parse_error",
        "detail": "JSON strings may not contain NUL (\\u0000) characters.",
    }


def test_an_event_whose_key_would_hold_a_nul_is_rejected_and_other_fields_may(admin_api):

    get_providers().queue.ensure_resources(queue_spec(WorkloadClass.objects.get(slug="found-class")))
    url = "/api/v1/classes/found-class/events"
    response = admin_api.post(url, {"tenant_id": "a\x00", "document_id": "d", "revision": 1}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "idempotency_key"
    fine = admin_api.post(url, {"tenant_id": "a", "document_id": "d", "revision": 1, "note": "n\x00"}, format="json")
    assert fine.status_code == 202


def test_a_lockout_for_a_username_with_a_nul_is_audited(db, make_user):
    cache.clear()
    with override_settings(LOGIN_FAILURES_PER_USERNAME=1, LOGIN_FAILURES_PER_IP=0):
        response = Client().post("/accounts/login/", {"username": "ro\x00ot", "password": "x"})
    cache.clear()
    assert response.status_code == 429
    # The per-username limit counts per address (a flood elsewhere cannot lock this user out).
    assert AuditEvent.objects.get(action="login.locked_out").target_repr == "username ro\ufffdot from address 127.0.0.1"
