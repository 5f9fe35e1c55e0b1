"""Payload normalization and validation for ingestion: pure functions, no Django.

Normalization makes equal work look equal before its idempotency key is computed, so two
spellings of one job ("  Doc-1 " / "Doc-1", "PDF" / "pdf", "2026-11-28T05:00:00+01:00" /
"2026-11-28T04:00:00Z") deduplicate: schema defaults are applied, strings are trimmed, enum
values take the schema's spelling when they match it case-insensitively, and date-times become
RFC 3339 in UTC with a trailing Z; strings are Unicode-normalized to NFC, so the composed and
decomposed spellings of one id are one id.

Before any of that, `hostile_input_error` refuses what JSON can carry but a payload must not:
nesting deeper than MAX_NESTING_DEPTH, non-finite numbers (NaN, Infinity, 1e999: not JSON once
re-encoded) and lone UTF-16 surrogates (not encodable as UTF-8); and, where a payload is stored
as JSON rather than sent as bytes (an edited dead letter), NUL characters, which PostgreSQL stores
in neither text nor jsonb. Each is a field error with its path, never a crash.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from workloads.domain.schemas import Unresolvable, safe_validator

# How deep a payload may nest (objects and arrays). Real payloads stay far below; deeper input only
# serves to exhaust the recursion of the parsers and validators that walk it.
MAX_NESTING_DEPTH = 64


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


def _join(path: str, part) -> str:
    return f"{path}.{part}" if path else str(part)


NUL_CODE = "nul"


def _bad_string(text: str, allow_nul: bool) -> tuple[str, str] | None:
    if not allow_nul and "\x00" in text:
        return "must not contain NUL (\\u0000) characters", NUL_CODE
    if any("\ud800" <= char <= "\udfff" for char in text):
        return "must not contain lone UTF-16 surrogates (such as \\ud800): they are not valid Unicode text", "type"
    return None


def hostile_input_error(value, *, max_depth: int = MAX_NESTING_DEPTH, allow_nul: bool = True) -> FieldError | None:
    """The first part of a parsed JSON value no payload may hold, as a field error with its path.
    allow_nul=False where the value is stored as JSON in PostgreSQL.

    Iterative (an explicit stack), so input nested past Python's recursion limit is reported too."""
    stack = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                return FieldError(path, f"The payload nests deeper than {max_depth} levels.", "maxDepth")
            if isinstance(item, dict):
                for key, child in item.items():
                    child_path = _join(path, key if isinstance(key, str) else repr(key))
                    if isinstance(key, str) and (problem := _bad_string(key, allow_nul)):
                        # The path escapes the name: the answer itself must be valid UTF-8 text.
                        message, code = problem
                        return FieldError(_join(path, ascii(key)[1:-1]), f"The property name {message}.", code)
                    stack.append((child, child_path, depth + 1))
            else:
                stack.extend((child, _join(path, index), depth + 1) for index, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            return FieldError(
                path, "Numbers must be finite: NaN, Infinity and overflowing values like 1e999 are not JSON.", "type"
            )
        elif isinstance(item, str) and (problem := _bad_string(item, allow_nul)):
            message, code = problem
            return FieldError(path, f"The text {message}.", code)
    return None


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
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        return None  # 0001-01-01T00:00:00+14:00 or 9999-12-31T23:59:59-12:00: outside the representable years
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
        text = unicodedata.normalize("NFC", value.strip())
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
    return safe_validator(json.loads(schema_json))


def _path(parts) -> str:
    return ".".join(str(part) for part in parts)


def _schema_errors(payload, schema_json: str) -> list[FieldError]:
    errors = []
    try:
        found = list(_validator_for(schema_json).iter_errors(payload))
    except Unresolvable as exc:
        # A schema stored before non-local references were refused at save: nothing is fetched.
        message = f"The class's schema refers to {exc.ref!r}, which is never fetched; an admin must inline it."
        return [FieldError("", message, "$ref")]
    for error in found:
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
    hostile = hostile_input_error(event)
    if hostile is not None:
        return CheckedEvent(None, (hostile,))
    normalization_errors: list[FieldError] = []
    normalized = _normalize(event, schema, normalization_errors, "")
    schema_errors = _schema_errors(normalized, canonical_json(schema))
    # A bad date-time is reported once, by normalization, with a clearer message.
    reported = {e.field for e in normalization_errors}
    errors = normalization_errors + [e for e in schema_errors if not (e.code == "format" and e.field in reported)]
    if errors:
        return CheckedEvent(None, tuple(errors))
    return CheckedEvent(normalized, ())
