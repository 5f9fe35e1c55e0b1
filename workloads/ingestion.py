"""Payload normalization and validation for ingestion: pure functions, no Django.

Normalization makes equal work look equal before its idempotency key is computed, so two
spellings of one job ("  Doc-1 " / "Doc-1", "PDF" / "pdf", "2026-11-28T05:00:00+01:00" /
"2026-11-28T04:00:00Z") deduplicate: schema defaults are applied, strings are trimmed, enum
values take the schema's spelling when they match it case-insensitively, and date-times become
RFC 3339 in UTC with a trailing Z.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import jsonschema


@dataclass(frozen=True)
class FieldError:
    field: str  # JSON-pointer-like path with dots: "subject.age", "" for the payload itself
    message: str
    code: str  # the JSON Schema keyword that failed: required, type, enum, format, ...

    def as_dict(self) -> dict:
        return {"field": self.field, "message": self.message, "code": self.code}


def canonical_json(payload) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(payload) -> str:
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def rfc3339_utc(value: str) -> str | None:
    """'2026-11-28T05:00:00+01:00' -> '2026-11-28T04:00:00Z'; None when not RFC 3339 with an offset."""
    text = value.strip()
    if len(text) < 20 or text[10] not in "Tt ":
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # RFC 3339 requires an offset: a bare local time is ambiguous
    parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S") + (f".{parsed.microsecond:06d}" if parsed.microsecond else "") + "Z"


def _normalize(value, schema, errors: list[FieldError], path: str):
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        result = {}
        for key, item in value.items():
            sub_schema = properties.get(key)
            if sub_schema is None and isinstance(schema.get("additionalProperties"), dict):
                sub_schema = schema["additionalProperties"]
            result[key] = _normalize(item, sub_schema or {}, errors, f"{path}.{key}" if path else key)
        for key, sub_schema in properties.items():
            if key not in result and isinstance(sub_schema, dict) and "default" in sub_schema:
                result[key] = copy.deepcopy(sub_schema["default"])
        return result
    if isinstance(value, list):
        items = schema.get("items")
        return [
            _normalize(item, items or {}, errors, f"{path}.{i}" if path else str(i)) for i, item in enumerate(value)
        ]
    if isinstance(value, str):
        text = value.strip()
        enum = schema.get("enum")
        if isinstance(enum, list) and text not in enum:
            matches = [member for member in enum if isinstance(member, str) and member.lower() == text.lower()]
            if len(matches) == 1:
                text = matches[0]
        if schema.get("format") == "date-time":
            canonical = rfc3339_utc(text)
            if canonical is None:
                errors.append(
                    FieldError(
                        path,
                        f"{value!r} is not an RFC 3339 date-time with a time zone (e.g. 2026-11-28T04:00:00Z).",
                        "format",
                    )
                )
            else:
                text = canonical
        return text
    return value


@lru_cache(maxsize=512)
def _validator_for(schema_json: str):
    schema = json.loads(schema_json)
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def _path(parts) -> str:
    return ".".join(str(part) for part in parts)


def _schema_errors(payload, schema_json: str) -> list[FieldError]:
    errors = []
    for error in _validator_for(schema_json).iter_errors(payload):
        base = _path(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            for name in error.validator_value:
                if name not in error.instance:
                    field = f"{base}.{name}" if base else name
                    errors.append(FieldError(field, f"{field} is required.", "required"))
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for name in error.instance:
                if name not in allowed:
                    field = f"{base}.{name}" if base else name
                    errors.append(FieldError(field, f"{field} is not allowed by the schema.", "additionalProperties"))
            continue
        errors.append(FieldError(base, error.message, str(error.validator)))
    # jsonschema raises one `required` error per missing property, each naming the whole list, so
    # the loop above finds every missing field once per error: report each problem once.
    return sorted(dict.fromkeys(errors), key=lambda e: (e.field, e.code))


@dataclass(frozen=True)
class CheckedEvent:
    payload: dict | None  # the normalized payload, or None when invalid
    errors: tuple[FieldError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def normalize_and_validate(event, schema: dict) -> CheckedEvent:
    """Normalize an event, then validate the normalized form against the class schema."""
    if not isinstance(event, dict):
        return CheckedEvent(None, (FieldError("", "An event must be a JSON object.", "type"),))
    normalization_errors: list[FieldError] = []
    normalized = _normalize(event, schema, normalization_errors, "")
    schema_errors = _schema_errors(normalized, canonical_json(schema))
    # A bad date-time is reported once, by normalization, with a clearer message.
    reported = {e.field for e in normalization_errors}
    errors = normalization_errors + [e for e in schema_errors if not (e.code == "format" and e.field in reported)]
    if errors:
        return CheckedEvent(None, tuple(errors))
    return CheckedEvent(normalized, ())
