"""The bulk guard: a replay or a discard by filter that would act on many dead letters, or on
every one of its class, needs a confirmation that names the count; a very wide time range no
longer walks around the empty-filter guard."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.workloads.deadletter_helpers import dead_letter_row, make_class
from workloads.models import Action, DeadLetter
from workloads.providers import get_providers

EVERYTHING = {"workload_class": "doc-jobs", "seen_after": "1970-01-01T00:00:00Z"}


@pytest.fixture
def docs(db):
    docs = make_class(get_providers().queue, "doc-jobs")
    for minutes in range(4):
        dead_letter_row(docs, seen=timezone.now() - timedelta(minutes=minutes + 1))
    dead_letter_row(docs, error_signature="sig-other")
    return docs


@pytest.mark.parametrize(
    ("url", "done"),
    [("/api/v1/replays/", 202), ("/api/v1/dead-letters/discard/", 200)],
    ids=["replay", "discard"],
)
def test_a_filter_over_the_whole_class_needs_the_count_confirmed(docs, client_as, operator, url, done):
    client = client_as(operator)
    refused = client.post(url, EVERYTHING, format="json")
    assert refused.status_code == 400, refused.content
    body = refused.json()
    assert body["type"] == "confirmation_required" and body["confirm_count"] == 5
    assert "every new dead letter of doc-jobs" in body["detail"] and "confirm_count=5" in body["detail"]
    wrong = client.post(url, {**EVERYTHING, "confirm_count": 4}, format="json")
    assert wrong.status_code == 400 and "confirm_count is 4" in wrong.json()["detail"]
    assert not Action.objects.exists() and not DeadLetter.objects.filter(status="discarded").exists()

    assert client.post(url, {**EVERYTHING, "confirm_count": 5}, format="json").status_code == done


def test_the_preview_says_which_count_to_confirm(docs, client_as, operator):
    client = client_as(operator)
    preview = client.post("/api/v1/replays/preview/", EVERYTHING, format="json").json()
    assert preview["selects_whole_class"] is True and preview["confirm_count"] == 5
    one_signature = {"workload_class": "doc-jobs", "error_signature": "sig-other"}
    preview = client.post("/api/v1/replays/preview/", one_signature, format="json").json()
    assert preview["selects_whole_class"] is False and preview["confirm_count"] is None
    assert client.post("/api/v1/replays/", one_signature, format="json").status_code == 202


def test_more_than_the_threshold_needs_the_count_confirmed(docs, client_as, operator, settings):
    settings.DEAD_LETTER_BULK_CONFIRM_THRESHOLD = 3
    client = client_as(operator)
    four = {"workload_class": "doc-jobs", "error_signature": "sig-unavailable"}  # 4 of the class's 5
    refused = client.post("/api/v1/replays/", four, format="json")
    assert refused.status_code == 400 and refused.json()["confirm_count"] == 4
    assert "every" not in refused.json()["detail"]
    assert client.post("/api/v1/replays/", {**four, "confirm_count": 4}, format="json").status_code == 202


def test_an_explicit_selection_needs_no_count(docs, client_as, operator):
    ids = list(DeadLetter.objects.values_list("pk", flat=True))
    response = client_as(operator).post("/api/v1/replays/", {"workload_class": "doc-jobs", "ids": ids}, format="json")
    assert response.status_code == 202


def test_the_dashboards_confirm_step_asks_for_the_count(docs, operator):
    client = Client()
    client.force_login(operator)
    data = {"workload_class": "doc-jobs", "status": "open", "since": "7d", "all_matching": "1"}
    review = client.post("/dead-letters/discard/", data, headers={"HX-Request": "true"}).content.decode()
    assert 'name="confirm_count"' in review and "type 5 to confirm" in review
    refused = client.post("/dead-letters/discard/", {**data, "step": "confirm"}, headers={"HX-Request": "true"})
    assert "confirm_count=5" in refused.content.decode()
    assert not DeadLetter.objects.filter(status="discarded").exists()
    done = client.post("/dead-letters/discard/", {**data, "step": "confirm", "confirm_count": "5"})
    assert done.status_code == 302
    assert DeadLetter.objects.filter(status="discarded").count() == 5
