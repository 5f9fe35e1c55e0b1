"""Normalization makes equal work look equal; validation reports each field that is wrong."""

import pytest

from workloads.domain.payloads import fingerprint, normalize_and_validate, rfc3339_utc

SCHEMA = {
    "type": "object",
    "required": ["tenant_id", "document_id", "kind"],
    "properties": {
        "tenant_id": {"type": "string", "minLength": 1},
        "document_id": {"type": "string", "maxLength": 10},
        "kind": {"type": "string", "enum": ["pdf", "html"]},
        "priority": {"type": "string", "enum": ["low", "normal"], "default": "normal"},
        "submitted_at": {"type": "string", "format": "date-time"},
        "pages": {"type": "integer", "minimum": 1},
        "meta": {
            "type": "object",
            "properties": {
                "lang": {"type": "string", "default": "en"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
    "additionalProperties": False,
}


def test_two_spellings_of_the_same_work_normalize_to_one_payload():
    a = normalize_and_validate(
        {
            "tenant_id": " acme ",
            "document_id": "doc-1",
            "kind": "PDF",
            "submitted_at": "2026-11-28T05:00:00+01:00",
            "meta": {"tags": [" x "]},
        },
        SCHEMA,
    )
    b = normalize_and_validate(
        {
            "tenant_id": "acme",
            "document_id": "doc-1 ",
            "kind": "pdf",
            "priority": "normal",
            "submitted_at": "2026-11-28T04:00:00Z",
            "meta": {"lang": "en", "tags": ["x"]},
        },
        SCHEMA,
    )
    assert a.ok and b.ok
    assert a.payload == b.payload
    assert fingerprint(a.payload) == fingerprint(b.payload)
    assert a.payload["submitted_at"] == "2026-11-28T04:00:00Z"
    assert a.payload["priority"] == "normal" and a.payload["meta"]["lang"] == "en"


@pytest.mark.parametrize(
    ("event", "field", "code"),
    [
        ({"document_id": "d", "kind": "pdf"}, "tenant_id", "required"),
        ({"tenant_id": "", "document_id": "d", "kind": "pdf"}, "tenant_id", "minLength"),
        ({"tenant_id": "t", "document_id": "d" * 11, "kind": "pdf"}, "document_id", "maxLength"),
        ({"tenant_id": "t", "document_id": "d", "kind": "doc"}, "kind", "enum"),
        ({"tenant_id": 7, "document_id": "d", "kind": "pdf"}, "tenant_id", "type"),
        ({"tenant_id": "t", "document_id": "d", "kind": "pdf", "pages": 0}, "pages", "minimum"),
        ({"tenant_id": "t", "document_id": "d", "kind": "pdf", "extra": 1}, "extra", "additionalProperties"),
        ({"tenant_id": "t", "document_id": "d", "kind": "pdf", "submitted_at": "yesterday"}, "submitted_at", "format"),
        (
            {"tenant_id": "t", "document_id": "d", "kind": "pdf", "submitted_at": "2026-11-28T04:00:00"},
            "submitted_at",
            "format",
        ),
        ({"tenant_id": "t", "document_id": "d", "kind": "pdf", "meta": {"tags": [1]}}, "meta.tags.0", "type"),
    ],
)
def test_each_schema_failure_names_its_field(event, field, code):
    checked = normalize_and_validate(event, SCHEMA)
    assert not checked.ok
    assert [(e.field, e.code) for e in checked.errors] == [(field, code)]


def test_every_failing_field_is_reported_at_once():
    checked = normalize_and_validate({"kind": "doc", "pages": "two"}, SCHEMA)
    assert {e.field for e in checked.errors} == {"tenant_id", "document_id", "kind", "pages"}


@pytest.mark.parametrize("event", [[1, 2], "text", 3, None])
def test_a_non_object_event_is_rejected(event):
    checked = normalize_and_validate(event, SCHEMA)
    assert not checked.ok and checked.errors[0].code == "type"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T04:00:00Z", "2026-11-28T04:00:00Z"),
        ("2026-11-28t04:00:00z", "2026-11-28T04:00:00Z"),
        ("2026-11-28T04:00:00.250+00:00", "2026-11-28T04:00:00.250000Z"),
        ("2026-11-27T23:00:00-05:00", "2026-11-28T04:00:00Z"),
        ("2026-11-28T04:00:00", None),
        ("2026-11-28", None),
        ("not a date", None),
    ],
)
def test_rfc3339_utc(text, expected):
    assert rfc3339_utc(text) == expected


def test_each_missing_required_field_is_reported_once():
    # jsonschema raises one `required` error per missing property; each used to list them all.
    checked = normalize_and_validate({}, SCHEMA)
    assert [(e.field, e.code) for e in checked.errors] == [
        ("document_id", "required"),
        ("kind", "required"),
        ("tenant_id", "required"),
    ]
