"""Valid-but-hostile JSON at every door a payload enters (ingestion, edit-and-replay through the API
and the dashboard form): a clear 400 with the field's path, never a 5xx."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controlplane.roles import Role
from tests.factories import DOCUMENT_SCHEMA, WorkloadClassFactory
from tests.workloads.deadletter_helpers import dead_letter_row
from workloads.models import DeadLetter
from workloads.providers import get_providers
from workloads.providers.specs import queue_spec

INGEST = "/api/v1/classes/hostile-jobs/events"
NESTING_LIMIT = 64  # documented in docs/operations.md (workloads.domain.payloads.MAX_NESTING_DEPTH)

SCHEMA = copy.deepcopy(DOCUMENT_SCHEMA)
SCHEMA["properties"].update(
    due={"type": "string", "format": "date-time"},
    n={"type": "number"},
    deep={},
)

BASE = '{"tenant_id": "acme", "document_id": "doc-1", "revision": 1'


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


# (raw JSON body of one event, the field the 400 must name)
HOSTILE = {
    "nested 474": (BASE + ', "deep": ' + _nested(474) + "}", "deep"),
    "nested past the limit": (BASE + ', "deep": ' + _nested(NESTING_LIMIT) + "}", "deep"),
    "nested 5000": (BASE + ', "deep": ' + _nested(5000) + "}", None),
    "date-time below year 1": (BASE + ', "due": "0001-01-01T00:00:00+14:00"}', "due"),
    "date-time above year 9999": (BASE + ', "due": "9999-12-31T23:59:59-12:00"}', "due"),
    "lone surrogate": (BASE + ', "note": "\\ud800"}', "note"),
    "lone surrogate key": (BASE + ', "\\udfff": 1}', "\\udfff"),
    "overflowing number": (BASE + ', "n": 1e999}', "n"),
    "negative overflow": (BASE + ', "n": -1e999}', "n"),
    "NaN": (BASE + ', "n": NaN}', None),
    "Infinity": (BASE + ', "n": Infinity}', None),
}


@pytest.fixture
def hostile_class(db):
    workload_class = WorkloadClassFactory(slug="hostile-jobs", payload_schema=SCHEMA)
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    return workload_class


@pytest.fixture
def producer(hostile_class, make_user, token_client):
    client, _token = token_client(make_user("producer-bot", Role.VIEWER), scopes=["ingest:hostile-jobs"])
    return client


@pytest.fixture
def operator_api(hostile_class, operator, client_as):
    return client_as(operator)


def _paths(body: dict) -> set[str]:
    """The fields an API error names: as keys, or leading a message ("payload.n: ...")."""
    errors = body.get("errors")
    if isinstance(errors, list):
        return {error["field"] for error in errors}
    if isinstance(errors, dict):
        named = {message.split(":")[0] for messages in errors.values() for message in messages if ":" in message}
        return set(errors) | named
    return set()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_events_are_a_400_naming_the_field_at_ingestion(producer, case):
    raw, field = HOSTILE[case]
    response = producer.post(INGEST, raw, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    if field is not None:
        [error] = response.json()["errors"]
        assert error["field"].split(".")[0] == field, error
    assert get_providers().queue.pull(queue_spec_of("hostile-jobs"), max_messages=1, timeout=0.2) == []


def queue_spec_of(slug):
    from workloads.models import WorkloadClass

    return queue_spec(WorkloadClass.objects.get(slug=slug))


def test_a_hostile_event_in_a_batch_is_refused_alone(producer):
    batch = "[" + HOSTILE["overflowing number"][0] + ", " + BASE + "}]"
    response = producer.post(INGEST, batch, content_type="application/json")
    assert response.status_code == 202, response.content[:300]
    first, second = response.json()["results"]
    assert first["status"] == "rejected" and first["errors"][0]["field"] == "n"
    assert second["status"] == "accepted"


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_payloads_are_a_400_naming_the_field_in_edit_and_replay(hostile_class, operator_api, case):
    raw, field = HOSTILE[case]
    row = dead_letter_row(hostile_class)
    url = f"/api/v1/dead-letters/{row.pk}/edit-and-replay/"
    response = operator_api.post(url, '{"payload": ' + raw + "}", content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    if field is not None:
        assert any(name.split(".")[:2] == ["payload", field] for name in _paths(response.json())), response.json()
    assert DeadLetter.objects.get(pk=row.pk).edited_payload is None


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_payloads_are_refused_with_the_field_in_the_edit_form(hostile_class, operator, client, case):
    raw, field = HOSTILE[case]
    row = dead_letter_row(hostile_class)
    client.force_login(operator)
    response = client.post(f"/dead-letters/{row.pk}/edit-and-replay/", {"payload": raw})
    assert response.status_code == 400, response.content[:300]
    if field is not None and field.isascii():
        assert f"{field}:" in response.content.decode() or f"payload.{field}" in response.content.decode()
    assert DeadLetter.objects.get(pk=row.pk).edited_payload is None


# --- Property tests: any JSON body is answered, never with a 5xx ------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None, exclude_categories=())),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
any_text = st.text(st.characters(codec=None, exclude_categories=()))
# Mostly events that pass the schema, so hostile values reach everything past validation too.
events = st.fixed_dictionaries(
    {"tenant_id": any_text, "document_id": any_text.filter(lambda t: t.strip()), "revision": st.integers(1)},
    optional={
        "due": any_text | st.datetimes().map(lambda d: d.isoformat() + "+14:00"),
        "n": st.floats(allow_nan=True, allow_infinity=True) | st.integers(),
        "note": any_text,
        "deep": json_values,
    },
)
bodies = st.one_of(events, json_values, st.lists(events, max_size=3))


def _encode(value) -> bytes:
    # allow_nan: NaN and Infinity go on the wire as Python writes them; surrogates as \\ud800 escapes
    return json.dumps(value, allow_nan=True).encode()


KNOWN = {"tenant_id": "\ud800", "document_id": "d", "revision": 1, "due": "0001-01-01T00:00:00+14:00"}


PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(body=bodies)
@example(body=KNOWN)
def test_any_json_body_to_ingestion_is_answered_without_a_5xx(producer, body):
    response = producer.post(INGEST, _encode(body), content_type="application/json")
    assert response.status_code < 500, (body, response.content[:300])


@PROPERTY_SETTINGS
@given(payload=bodies)
@example(payload=KNOWN)
def test_any_json_payload_to_edit_and_replay_is_answered_without_a_5xx(hostile_class, operator_api, payload):
    row = dead_letter_row(hostile_class)
    url = f"/api/v1/dead-letters/{row.pk}/edit-and-replay/"
    response = operator_api.post(url, _encode({"payload": payload}), content_type="application/json")
    assert response.status_code < 500, (payload, response.content[:300])


@PROPERTY_SETTINGS
@given(payload=bodies)
@example(payload=KNOWN)
def test_any_json_text_in_the_edit_form_is_answered_without_a_5xx(hostile_class, operator, client, payload):
    row = dead_letter_row(hostile_class)
    client.force_login(operator)
    response = client.post(f"/dead-letters/{row.pk}/edit-and-replay/", {"payload": json.dumps(payload)})
    assert response.status_code < 500, (payload, response.content[:300])


def test_a_nul_in_an_edited_payload_is_a_400_with_its_path(hostile_class, operator_api, operator, client):
    # Events may carry NUL (they travel as bytes); an edited payload is stored as jsonb, which cannot.
    raw = BASE + ', "note": "a\\u0000b"}'
    row = dead_letter_row(hostile_class)
    api = operator_api.post(
        f"/api/v1/dead-letters/{row.pk}/edit-and-replay/", '{"payload": ' + raw + "}", content_type="application/json"
    )
    assert api.status_code == 400 and "payload.note" in _paths(api.json()), api.content
    client.force_login(operator)
    form = client.post(f"/dead-letters/{row.pk}/edit-and-replay/", {"payload": raw})
    assert form.status_code == 400 and "payload.note:" in form.content.decode()
    assert DeadLetter.objects.get(pk=row.pk).edited_payload is None
