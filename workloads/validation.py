"""Validators for workload-class settings.

These are the single source of truth for what a valid setting is: model fields and `clean()`
use them, and the admin, the REST API and the UI all validate through the model.
"""

import re
import string
import zoneinfo
from functools import lru_cache

import jsonschema
from django.core.exceptions import ValidationError

from workloads.domain.schemas import non_local_references, regex_problems

# Google's resource-id rules (Pub/Sub: "Resource names"; Cloud Run: service/worker pool names).
PROJECT_ID = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
PUBSUB_ID = r"(?!goog)[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}"
LOCATION = r"[a-z]+(?:-[a-z]+)+[0-9]+"
WORKER_POOL_ID = r"[a-z](?:[-a-z0-9]{0,47}[a-z0-9])?"

TOPIC_NAME = re.compile(rf"^projects/({PROJECT_ID})/topics/({PUBSUB_ID})$")
SUBSCRIPTION_NAME = re.compile(rf"^projects/({PROJECT_ID})/subscriptions/({PUBSUB_ID})$")
WORKER_POOL_NAME = re.compile(rf"^projects/({PROJECT_ID})/locations/({LOCATION})/workerPools/({WORKER_POOL_ID})$")


def validate_topic_name(value: str) -> None:
    if value and not TOPIC_NAME.match(value):
        raise ValidationError(
            "Enter a Pub/Sub topic name like projects/my-project/topics/my-topic "
            "(topic ids: 3-255 characters, start with a letter, not with 'goog').",
            code="invalid_topic_name",
        )


def validate_subscription_name(value: str) -> None:
    if value and not SUBSCRIPTION_NAME.match(value):
        raise ValidationError(
            "Enter a Pub/Sub subscription name like projects/my-project/subscriptions/my-sub "
            "(subscription ids: 3-255 characters, start with a letter, not with 'goog').",
            code="invalid_subscription_name",
        )


def validate_worker_pool_name(value: str) -> None:
    if value and not WORKER_POOL_NAME.match(value):
        raise ValidationError(
            "Enter a Cloud Run worker pool name like "
            "projects/my-project/locations/us-central1/workerPools/my-pool "
            "(pool ids: lower-case letters, digits and hyphens, at most 49 characters).",
            code="invalid_worker_pool_name",
        )


def validate_project_id(value: str) -> None:
    if not re.fullmatch(PROJECT_ID, value or ""):
        raise ValidationError(
            "Enter a Google Cloud project id: 6-30 lower-case letters, digits or hyphens, starting with a letter.",
            code="invalid_project_id",
        )


# --- JSON Schema --------------------------------------------------------------------------------
def validate_payload_schema(schema) -> None:
    """The payload schema must be a valid JSON Schema (checked against its meta-schema) that
    describes a JSON object, since key templates address its top-level properties."""
    if not isinstance(schema, dict):
        raise ValidationError("The payload schema must be a JSON object.", code="invalid_schema")
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        location = "/".join(str(part) for part in exc.path) or "(root)"
        raise ValidationError(
            f"The payload schema is not a valid JSON Schema at {location}: {exc.message}",
            code="invalid_schema",
        ) from None
    if schema.get("type") != "object":
        raise ValidationError(
            'The payload schema must describe an object: set "type": "object" at the top level.',
            code="schema_not_object",
        )
    references = non_local_references(schema)
    if references:
        # Validation never fetches (workloads/domain/schemas.py): such a reference could only fail.
        raise ValidationError(
            f"The payload schema refers outside itself at {', '.join(references)}: only local references "
            '("#/$defs/name", "#anchor") are allowed; copy the referenced schema under "$defs".',
            code="non_local_reference",
        )
    problems = regex_problems(schema)
    if problems:
        raise ValidationError(
            f"The payload schema has regular expressions the RE2 engine cannot run at {'; '.join(problems)}. "
            "Patterns run on RE2 (linear time): backreferences and lookarounds are not available.",
            code="unsupported_regex",
        )


@lru_cache(maxsize=256)
def _template_fields_cached(template: str) -> tuple[str, ...]:
    fields = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValidationError(f"The template is not well formed: {exc}.", code="invalid_template") from None
    for _literal, field, format_spec, conversion in parsed:
        if field is None:
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field) or format_spec or conversion:
            raise ValidationError(
                f"The placeholder {{{field}}} is not allowed: use plain top-level property names "
                "like {tenant_id}, without attributes, indexes or format specs.",
                code="invalid_template",
            )
        fields.append(field)
    return tuple(fields)


def template_fields(template: str) -> tuple[str, ...]:
    """The property names a key template like '{tenant_id}:{document_id}' refers to."""
    return _template_fields_cached(template)


def validate_key_template(template: str, schema: dict, *, label: str, require_placeholder: bool) -> None:
    fields = template_fields(template)
    if require_placeholder and not fields:
        raise ValidationError(
            f"The {label} must reference at least one payload property, like {{document_id}}.",
            code="template_without_fields",
        )
    required = set(schema.get("required", [])) if isinstance(schema, dict) else set()
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    missing = [f for f in fields if f not in properties or f not in required]
    if missing:
        raise ValidationError(
            f"The {label} references {', '.join(missing)}, which must be top-level properties listed "
            'in the schema\'s "required" array (a key built from an absent field would collide).',
            code="template_field_not_required",
        )


def render_key_template(template: str, payload: dict) -> str:
    """Fill a key template from a (validated, normalized) payload."""
    values = {}
    for field in template_fields(template):
        value = payload[field]
        values[field] = value if isinstance(value, str) else _canonical_scalar(value)
    return template.format(**values)


def _canonical_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


# --- Schedules ------------------------------------------------------------------------------------
def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"{value!r} is not an IANA time zone (for example Europe/Paris or America/New_York).",
            code="invalid_timezone",
        ) from None


def validate_days_of_week(value) -> None:
    if (
        not isinstance(value, list)
        or not value
        or any(not isinstance(day, int) or isinstance(day, bool) or not 0 <= day <= 6 for day in value)
        or len(set(value)) != len(value)
    ):
        raise ValidationError(
            "Days of week must be a non-empty list of distinct numbers 0-6 (0 = Monday, 6 = Sunday).",
            code="invalid_days",
        )
