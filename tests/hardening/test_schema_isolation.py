"""Payload schemas stay inside the process: no `$ref` is ever fetched (not from the network, not
from the disk), and no admin-written regex can freeze a worker (they run on RE2)."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core import checks

from tests.background_server import serve_in_background
from tests.factories import DOCUMENT_SCHEMA, WorkloadClassFactory, class_payload
from workloads.domain.payloads import normalize_and_validate
from workloads.models import WorkloadClass
from workloads.providers import get_providers
from workloads.providers.specs import queue_spec

INGEST = "/api/v1/classes/{slug}/events"


def _schema_with(**properties) -> dict:
    schema = copy.deepcopy(DOCUMENT_SCHEMA)
    schema["properties"].update(properties)
    return schema


def _event(**extra) -> dict:
    return {"tenant_id": "acme", "document_id": "doc-1", "revision": 1, **extra}


class _RecordingServer:
    """A real HTTP server on a free port that serves a JSON schema and records every request."""

    def __init__(self):
        requests = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                requests.append(self.path)
                body = b'{"type": "string", "maxLength": 1}'
                self.send_response(200)
                self.send_header("Content-Type", "application/schema+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/schema.json"
        serve_in_background(self.server)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recording_server():
    server = _RecordingServer()
    yield server
    server.close()


@pytest.fixture
def silent_host():
    """A TCP port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/never.json"
    listener.close()


@pytest.fixture
def producer(db, make_user, token_client):
    from controlplane.roles import Role

    client, _token = token_client(make_user("producer-bot", Role.VIEWER), scopes=["ingest:*"])
    return client


def _stored_class(slug: str, schema: dict) -> WorkloadClass:
    """A class whose schema was stored before references were refused (written past validation)."""
    workload_class = WorkloadClassFactory(slug=slug)
    WorkloadClass.objects.filter(pk=workload_class.pk).update(payload_schema=schema)
    workload_class.refresh_from_db()
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    return workload_class


# --- References -----------------------------------------------------------------------------------------
def test_a_stored_remote_reference_is_never_fetched_at_ingestion(recording_server, producer):
    _stored_class("remote-ref", _schema_with(note={"$ref": recording_server.url}))
    batch = [_event(document_id=f"doc-{n}", note="long note") for n in range(20)]
    response = producer.post(INGEST.format(slug="remote-ref"), batch, format="json")
    assert response.status_code == 400, response.content
    assert {error["code"] for result in response.json()["results"] for error in result["errors"]} == {"$ref"}
    assert recording_server.requests == []


def test_a_file_reference_is_not_read_and_its_content_not_returned(tmp_path, producer):
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "string", "enum": ["top-secret-value"]}')
    _stored_class("file-ref", _schema_with(note={"$ref": secret.as_uri()}))
    response = producer.post(INGEST.format(slug="file-ref"), _event(note="x"), format="json")
    assert response.status_code == 400
    assert "top-secret-value" not in response.content.decode()


@pytest.mark.timeout(30)
def test_a_reference_to_a_host_that_never_answers_does_not_hang(silent_host, producer):
    _stored_class("silent-ref", _schema_with(note={"$ref": silent_host}))
    response = producer.post(INGEST.format(slug="silent-ref"), _event(note="x"), format="json")
    assert response.status_code == 400


def test_a_stored_reference_is_not_fetched_on_edit_and_replay_either(recording_server):
    schema = _schema_with(note={"$ref": recording_server.url})
    checked = normalize_and_validate(_event(note="x"), schema)
    assert not checked.ok and checked.errors[0].code == "$ref"
    assert recording_server.requests == []


@pytest.mark.parametrize(
    ("reference", "path"),
    [
        ("http://127.0.0.1:9/schema.json", "properties/note/$ref"),
        ("file:///etc/passwd", "properties/note/$ref"),
        ("other.json#/x", "properties/note/$ref"),
    ],
)
def test_a_schema_with_a_non_local_reference_is_refused_at_save_naming_its_path(client_as, admin_user, reference, path):
    body = class_payload(payload_schema=_schema_with(note={"$ref": reference}))
    response = client_as(admin_user).post("/api/v1/classes/", body, format="json")
    assert response.status_code == 400, response.content
    [message] = response.json()["errors"]["payload_schema"]
    assert path in message and reference in message
    assert not WorkloadClass.objects.exists()


def test_local_references_still_resolve(client_as, admin_user):
    schema = _schema_with(note={"$ref": "#/$defs/short"})
    schema["$defs"] = {"short": {"type": "string", "maxLength": 3}}
    response = client_as(admin_user).post("/api/v1/classes/", class_payload(payload_schema=schema), format="json")
    assert response.status_code == 201, response.content
    assert normalize_and_validate(_event(note="abc"), schema).ok
    assert [e.field for e in normalize_and_validate(_event(note="abcd"), schema).errors] == ["note"]


def test_a_database_check_names_classes_whose_stored_schema_refers_outside(db):
    _stored_class("remote-ref", _schema_with(note={"$ref": "http://example.invalid/s.json"}))
    WorkloadClassFactory(slug="clean-class")
    found = checks.run_checks(databases=["default"])
    warnings = [m for m in found if m.id == "workloads.W001"]
    assert len(warnings) == 1 and "remote-ref" in warnings[0].msg and "clean-class" not in warnings[0].msg


# --- Regular expressions ----------------------------------------------------------------------------------
# Python's regex engine holds the GIL while it backtracks and checks no signals: neither a thread
# join nor pytest-timeout can end it. So the catastrophic cases are first validated in a child
# process with a timeout; a regression fails there instead of hanging the run.
_VALIDATE_IN_CHILD = """
import json, sys
from workloads.domain.payloads import normalize_and_validate
schema, payload = json.load(sys.stdin)
print(json.dumps([error.as_dict() for error in normalize_and_validate(payload, schema).errors]))
"""


def _errors_from_a_child(schema: dict, payload: dict, timeout: float = 20.0) -> list[dict]:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _VALIDATE_IN_CHILD],
            input=json.dumps([schema, payload]),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=Path(__file__).resolve().parents[2],
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"validation did not finish in {timeout:g} s: the regex backtracks")
    return json.loads(done.stdout)


REDOS_SCHEMA = _schema_with(note={"type": "string", "pattern": "^(a+)+$"})


def test_a_catastrophic_pattern_is_answered_at_once():
    assert [e["field"] for e in _errors_from_a_child(REDOS_SCHEMA, _event(note="a" * 40 + "!"))] == ["note"]
    assert _errors_from_a_child(REDOS_SCHEMA, _event(note="a" * 41)) == []


def test_catastrophic_pattern_properties_are_answered_at_once():
    schema = _schema_with()
    schema["patternProperties"] = {"^(a+)+$": {"type": "string"}}
    schema["additionalProperties"] = False
    [error] = _errors_from_a_child(schema, {**_event(), "a" * 40 + "!": 1})
    assert error["code"] == "additionalProperties"
    assert [e["field"] for e in _errors_from_a_child(schema, {**_event(), "aaa": 1})] == ["aaa"]  # still applies


def test_a_catastrophic_pattern_at_the_ingestion_endpoint(producer):
    _errors_from_a_child(REDOS_SCHEMA, _event(note="a" * 40 + "!"))  # bounded first: see above
    _stored_class("redos", REDOS_SCHEMA)
    response = producer.post(INGEST.format(slug="redos"), _event(note="a" * 40 + "!"), format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "note"
    accepted = producer.post(INGEST.format(slug="redos"), _event(note="a" * 41), format="json")
    assert accepted.status_code == 202


@pytest.mark.parametrize(
    ("schema_part", "path"),
    [
        ({"properties": {"note": {"type": "string", "pattern": "(a)\\1"}}}, "properties/note/pattern"),
        ({"properties": {"note": {"type": "string", "pattern": "(?=a)"}}}, "properties/note/pattern"),
        ({"patternProperties": {"(?<!x)y": {}}}, "patternProperties/(?<!x)y"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_at_save(client_as, admin_user, schema_part, path):
    schema = copy.deepcopy(DOCUMENT_SCHEMA)
    for key, value in schema_part.items():
        schema[key] = {**schema.get(key, {}), **value}
    response = client_as(admin_user).post("/api/v1/classes/", class_payload(payload_schema=schema), format="json")
    assert response.status_code == 400, response.content
    [message] = response.json()["errors"]["payload_schema"]
    assert path in message and "RE2" in message
