"""One dead-letter filter: a list and "replay all matching" of the same filter select the same
rows, on the dashboard and in the API, under one set of names (old names still accepted)."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.workloads.deadletter_helpers import dead_letter_row, make_class
from workloads.models import Action
from workloads.providers import get_providers
from workloads.services.replay_run import ReplayHandler


@pytest.fixture
def rows(db):
    queue = get_providers().queue
    docs = make_class(queue, "doc-jobs")
    other = make_class(queue, "other-jobs")
    recent = timezone.now() - timedelta(minutes=10)
    old = timezone.now() - timedelta(days=3)
    return {
        "docs": docs,
        "new": dead_letter_row(docs, error_signature="sig-a", seen=recent),
        "held": dead_letter_row(docs, error_signature="sig-a", seen=recent, status="held"),
        "old": dead_letter_row(docs, error_signature="sig-a", seen=old),
        "other_signature": dead_letter_row(docs, error_signature="sig-b", seen=recent),
        "replayed": dead_letter_row(docs, error_signature="sig-a", seen=recent, status="replayed"),
        "other_class": dead_letter_row(other, error_signature="sig-a", seen=recent),
    }


def _planned(action: Action) -> set[int]:
    return set(ReplayHandler().plan_query(action).values_list("pk", flat=True))


def test_the_dashboards_list_and_replay_all_matching_select_the_same_rows(rows, operator):
    client = Client()
    client.force_login(operator)
    params = {"workload_class": "doc-jobs", "error_signature": "sig-a", "status": "open", "since": "24h"}
    html = client.get("/dead-letters/messages/", params).content.decode()
    listed = {int(pk) for pk in re.findall(r'name="ids" value="(\d+)"', html)}
    assert listed == {rows["new"].pk, rows["held"].pk}

    response = client.post("/dead-letters/replay/", {**params, "all_matching": "1", "step": "confirm"})
    assert response.status_code == 302, response.content.decode()
    assert _planned(Action.objects.get(kind="replay")) == listed


def test_the_apis_list_and_replay_select_the_same_rows(rows, client_as, operator):
    client = client_as(operator)
    seen_after = (timezone.now() - timedelta(hours=24)).isoformat()
    query = {
        "workload_class": "doc-jobs",
        "error_signature": "sig-a",
        "status": ["new", "held"],
        "seen_after": seen_after,
    }
    listed = {row["id"] for row in client.get("/api/v1/dead-letters/", query).json()["results"]}
    assert listed == {rows["new"].pk, rows["held"].pk}

    preview = client.post("/api/v1/replays/preview/", query, format="json").json()
    assert preview["matching"] == len(listed)
    response = client.post("/api/v1/replays/", query, format="json")
    assert response.status_code == 202, response.content
    assert _planned(Action.objects.get(pk=response.json()["id"])) == listed


def test_the_old_api_name_of_the_statuses_still_works_and_is_marked_deprecated(rows, client_as, operator):
    client = client_as(operator)
    body = {"workload_class": "doc-jobs", "error_signature": "sig-a", "statuses": ["held"]}
    assert client.post("/api/v1/replays/preview/", body, format="json").json()["matching"] == 1
    schema = client.get("/api/schema/?format=json").json()["components"]["schemas"]
    assert schema["SelectionRequest"]["properties"]["statuses"]["deprecated"] is True
    assert "deprecated" not in schema["SelectionRequest"]["properties"]["status"]


def test_the_dashboard_still_reads_the_old_signature_parameter(rows, operator):
    client = Client()
    client.force_login(operator)
    html = client.get("/dead-letters/messages/", {"workload_class": "doc-jobs", "signature": "sig-b"}).content.decode()
    assert {int(pk) for pk in re.findall(r'name="ids" value="(\d+)"', html)} == {rows["other_signature"].pk}
