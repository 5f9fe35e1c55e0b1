"""JSON Schema evaluation that stays inside the process: pure functions, no Django.

Payload schemas are written by admins but evaluated on every event, so two things an admin can
write must not reach the outside world or freeze a worker:

- References. jsonschema resolves a non-local `$ref` ("http://...", "file:///...") by fetching
  it, with no timeout. Here validators get an empty `referencing` registry whose retrieve
  refuses everything: only local references (`#/...`, `$defs`, anchors) and the bundled
  meta-schemas resolve. `non_local_references` finds the others so they are refused at save.
- Regular expressions. Python's `re` backtracks: `"pattern": "^(a+)+$"` against 41 characters
  never returns. Every regex a schema holds (`pattern`, `patternProperties`, `additionalProperties`
  which consults them, the `regex` format) runs on RE2, whose matching time is linear in the input.
  RE2 has no backreferences or lookarounds: `regex_problems` lists the patterns it refuses, and
  `unevaluatedProperties` beside `patternProperties` is refused because jsonschema evaluates it
  through its own, backtracking, calls.
"""

from __future__ import annotations

from functools import lru_cache

import jsonschema
import re2
import referencing
import referencing.exceptions
from jsonschema.exceptions import ValidationError as SchemaValidationError

REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # refusals are reported to the admin, not logged to stderr

# A registry that resolves nothing: no retrieve function, so any lookup outside the schema (and
# outside the meta-schemas jsonschema bundles) raises `Unresolvable` instead of fetching.
EMPTY_REGISTRY = referencing.Registry()

Unresolvable = referencing.exceptions.Unresolvable


@lru_cache(maxsize=1024)
def compile_re2(pattern: str):
    """The RE2 program for a pattern; raises re2.error when RE2 cannot compile it."""
    return re2.compile(pattern, _RE2_OPTIONS)


def re2_error(pattern: str) -> str | None:
    """Why RE2 refuses a pattern (backreference, lookaround...), or None when it compiles."""
    try:
        compile_re2(pattern)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def _walk(schema, path: tuple):
    """Every (path, mapping) of a schema, including subschemas nested in lists."""
    if isinstance(schema, dict):
        yield path, schema
        for key, value in schema.items():
            yield from _walk(value, (*path, key))
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _walk(value, (*path, index))


def format_path(path: tuple) -> str:
    return "/".join(str(part) for part in path) or "(root)"


def non_local_references(schema) -> list[str]:
    """Paths of the `$ref` / `$dynamicRef` that point outside the schema (anything not "#...")."""
    found = []
    for path, mapping in _walk(schema, ()):
        for keyword in REFERENCE_KEYWORDS:
            value = mapping.get(keyword)
            if isinstance(value, str) and not value.startswith("#"):
                found.append(f"{format_path((*path, keyword))} ({value!r})")
    return found


def regex_problems(schema) -> list[str]:
    """The schema's regexes that RE2 cannot run, each with its path and RE2's reason."""
    problems = []
    for path, mapping in _walk(schema, ()):
        pattern = mapping.get("pattern")
        if isinstance(pattern, str) and (error := re2_error(pattern)):
            problems.append(f"{format_path((*path, 'pattern'))}: {error}")
        pattern_properties = mapping.get("patternProperties")
        if isinstance(pattern_properties, dict):
            for key in pattern_properties:
                if error := re2_error(key):
                    problems.append(f"{format_path((*path, 'patternProperties', key))}: {error}")
    has_pattern_properties = any("patternProperties" in mapping for _path, mapping in _walk(schema, ()))
    if has_pattern_properties:
        for path, mapping in _walk(schema, ()):
            if "unevaluatedProperties" in mapping:
                problems.append(
                    f"{format_path((*path, 'unevaluatedProperties'))}: not supported together with "
                    "patternProperties (its patterns would run on a backtracking engine)"
                )
    return problems


# --- RE2 versions of jsonschema's regex keywords (same behaviour and messages, other engine) ----------
def _search(pattern: str, text: str) -> bool:
    return compile_re2(pattern).search(text) is not None


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield SchemaValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator, additional, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key for key in instance if key not in properties and not any(_search(pattern, key) for pattern in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        joined = ", ".join(repr(each) for each in sorted(extras, key=str))
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            listed = ", ".join(repr(each) for each in sorted(patterns))
            yield SchemaValidationError(f"{joined} {verb} not match any of the regexes: {listed}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield SchemaValidationError(f"Additional properties are not allowed ({joined} {verb} unexpected)")


def _format_checker(base: jsonschema.FormatChecker) -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(list(base.checkers))
    checker.checkers = dict(base.checkers)
    checker.checkers["regex"] = (
        lambda instance: not isinstance(instance, str) or bool(compile_re2(instance)),
        re2.error,
    )
    return checker


@lru_cache(maxsize=16)
def _safe_validator_class(base):
    return jsonschema.validators.extend(
        base,
        validators={
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
        format_checker=_format_checker(base.FORMAT_CHECKER),
    )


def safe_validator(schema: dict):
    """A validator for a payload schema that fetches nothing and matches regexes on RE2."""
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator_class = _safe_validator_class(base)
    return validator_class(schema, registry=EMPTY_REGISTRY, format_checker=validator_class.FORMAT_CHECKER)
