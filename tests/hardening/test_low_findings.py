"""The low findings of the second hardening round, each pinned down: formula cells in the cost CSV,
Unicode spellings of one idempotency key, UTF-8 Idempotency-Key headers."""

from __future__ import annotations

import csv
import io
import json
import unicodedata

import pytest

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from workloads.providers import get_providers
from workloads.providers.specs import queue_spec

INGEST = "/api/v1/classes/doc-jobs/events"


# --- Cost CSV ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hostile", ['=HYPERLINK("http://x")', "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_cost_csv_cells_that_spreadsheets_read_as_formulas_are_neutralised(client_as, viewer, hostile):
    WorkloadClassFactory(slug="doc-jobs", name=hostile, owner_team=hostile)
    response = client_as(viewer).get("/api/v1/cost/", {"format": "csv"})
    assert response.status_code == 200, response.content
    rows = list(csv.DictReader(io.StringIO(response.content.decode(), newline="")))
    assert [(row["name"], row["owner_team"]) for row in rows] == [("'" + hostile, "'" + hostile)]


def test_negative_numbers_stay_numbers_in_the_cost_csv():
    from workloads.api.telemetry import spreadsheet_safe

    assert spreadsheet_safe("-1.250000") == "-1.250000" and spreadsheet_safe(-3) == -3
    assert spreadsheet_safe("-1+cmd") == "'-1+cmd"


# --- Idempotency keys -------------------------------------------------------------------------------------
@pytest.fixture
def producer(db, make_user, token_client):
    workload_class = WorkloadClassFactory(slug="doc-jobs")
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    client, _token = token_client(make_user("producer-bot", Role.VIEWER), scopes=["ingest:doc-jobs"])
    return client


def _event(document_id: str) -> dict:
    return {"tenant_id": "acme", "document_id": document_id, "revision": 1}


def test_nfc_and_nfd_spellings_of_one_id_are_one_message(producer):
    composed = unicodedata.normalize("NFC", "café-1")
    decomposed = unicodedata.normalize("NFD", "café-1")
    assert composed != decomposed
    first = producer.post(INGEST, _event(composed), format="json")
    second = producer.post(INGEST, _event(decomposed), format="json")
    assert first.status_code == 202 and second.status_code == 200, second.content
    assert second.json()["duplicate"] is True and second.json()["message_id"] == first.json()["message_id"]
    assert first.json()["idempotency_key"] == "acme:café-1:1"


def _as_wsgi_header(text: str) -> str:
    """What a WSGI server puts in META for a header sent as UTF-8 bytes (PEP 3333: latin-1)."""
    return text.encode("utf-8").decode("latin-1")


def test_a_utf8_idempotency_key_header_is_decoded_and_normalized(producer):
    nfd = unicodedata.normalize("NFD", "clé-été")
    first = producer.post(INGEST, _event("doc-1"), format="json", HTTP_IDEMPOTENCY_KEY=_as_wsgi_header(nfd))
    assert first.status_code == 202, first.content
    assert first.json()["idempotency_key"] == unicodedata.normalize("NFC", "clé-été")
    again = producer.post(INGEST, _event("doc-1"), format="json", HTTP_IDEMPOTENCY_KEY=_as_wsgi_header("clé-été"))
    assert again.status_code == 200 and again.json()["message_id"] == first.json()["message_id"]


def test_an_idempotency_key_header_that_is_not_utf8_is_a_clear_400(producer):
    latin1_bytes = "clé".encode("latin-1").decode("latin-1")  # the byte 0xE9 alone: not UTF-8
    response = producer.post(INGEST, _event("doc-1"), format="json", HTTP_IDEMPOTENCY_KEY=latin1_bytes)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Idempotency-Key" and "UTF-8" in response.json()["detail"]


# --- Concurrent edit-and-replay ---------------------------------------------------------------------------
@pytest.fixture
def dead_letter(db):
    from tests.workloads.deadletter_helpers import dead_letter_row, make_class

    return dead_letter_row(make_class(get_providers().queue, "doc-jobs"))


def test_the_second_writer_of_one_dead_letter_gets_a_409_through_the_api(dead_letter, make_user, client_as):
    url = f"/api/v1/dead-letters/{dead_letter.pk}/edit-and-replay/"
    first, second = client_as(make_user("op-a", Role.OPERATOR)), client_as(make_user("op-c", Role.OPERATOR))
    version = first.get(f"/api/v1/dead-letters/{dead_letter.pk}/").json()["edit_version"]
    assert second.get(f"/api/v1/dead-letters/{dead_letter.pk}/").json()["edit_version"] == version
    payload = {"tenant_id": "acme", "document_id": "doc-a", "revision": 1}
    won = first.post(url, {"payload": payload, "edit_version": version}, format="json")
    assert won.status_code == 202, won.content
    lost = second.post(url, {"payload": {**payload, "document_id": "doc-c"}, "edit_version": version}, format="json")
    assert lost.status_code == 409 and lost.json()["type"] == "edit_conflict", lost.content
    dead_letter.refresh_from_db()
    assert dead_letter.edited_payload["document_id"] == "doc-a" and dead_letter.edited_by_label == "op-a"


def test_the_second_writer_of_one_dead_letter_gets_a_409_in_the_form(dead_letter, make_user, client):
    from django.test import Client

    url = f"/dead-letters/{dead_letter.pk}/"
    first, second = Client(), Client()
    first.force_login(make_user("op-a", Role.OPERATOR))
    second.force_login(make_user("op-c", Role.OPERATOR))
    for page in (first.get(url), second.get(url)):  # both load the page, with its hidden version
        assert 'name="edit_version" value="0"' in page.content.decode()
    payload = {"tenant_id": "acme", "document_id": "doc-a", "revision": 1}
    won = first.post(f"{url}edit-and-replay/", {"payload": json.dumps(payload), "edit_version": "0"})
    assert won.status_code == 302, won.content[:300]
    lost = second.post(
        f"{url}edit-and-replay/", {"payload": json.dumps({**payload, "document_id": "doc-c"}), "edit_version": "0"}
    )
    assert lost.status_code == 409 and "was edited by op-a" in lost.content.decode()
    dead_letter.refresh_from_db()
    assert dead_letter.edited_payload["document_id"] == "doc-a"
