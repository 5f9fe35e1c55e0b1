"""OpenAPI generation: every operation documents the errors it can answer with.

drf-spectacular documents only the success status of an operation; clients (and the schemathesis
run in tests/hardening) also meet the error shape of `workloads.api.errors`. The statuses are
derived from what the operation has, so a new endpoint is documented without extra annotations:

- 400 when it takes a body or query parameters (validation errors, and services refusing a request);
- 401 and 403 unless anyone may call it;
- 404 when it has path parameters (an unknown object) or is paginated (a page past the end);
- 409 when it changes something (a guard in a service: already running, already ended, ...);
- 429 when a throttle applies to it;
- 503 always: the database can be unreachable (see `errors.exception_handler`).

An operation that documents one of these itself (ingestion's 400, for instance) keeps its own.
"""

import copy

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="A stable machine-readable reason, e.g. validation_error, not_found.")
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors only: dotted field paths to messages.",
    )


_DESCRIPTIONS = {
    "400": "Invalid request: see `errors` for field-level messages.",
    "401": "No credentials, or an invalid, expired or revoked token.",
    "403": "The caller's role or the token's scopes do not allow this.",
    "404": "No such object (or no such page).",
    "409": "The request conflicts with the object's state.",
    "429": "Too many requests: retry after `Retry-After` seconds.",
    "503": "A dependency (the database) is unavailable: retry after `Retry-After` seconds.",
}
_RETRY_AFTER = {
    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."},
}
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


class ControlPlaneAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        error = self.resolve_serializer(ErrorSerializer, "response")
        media_types = self.map_renderers("media_type")  # a CSV view answers a bad request in CSV too
        responses = operation.setdefault("responses", {})
        for code in self._error_statuses(operation):
            if code in responses:
                continue
            response = {"description": _DESCRIPTIONS[code], "content": {m: {"schema": error.ref} for m in media_types}}
            if code in ("429", "503"):
                response["headers"] = copy.deepcopy(_RETRY_AFTER)
            responses[code] = response
        return operation

    def _error_statuses(self, operation: dict) -> list[str]:
        parameters = operation.get("parameters", [])
        locations = {p.get("in") for p in parameters}
        codes = []
        if "requestBody" in operation or "query" in locations:
            codes.append("400")
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            codes += ["401", "403"]
        if "path" in locations or any(p.get("name") == "page" for p in parameters):
            codes.append("404")
        if self.method in _MUTATING:
            codes.append("409")
        if self.view.get_throttles():
            codes.append("429")
        codes.append("503")
        return codes


# URL names of the spellings without a trailing slash that round 1 published (see `api/urls.py`).
OLD_SPELLING_SUFFIX = "-without-slash"


def mark_old_spellings(result, generator, request, public):
    """drf-spectacular postprocessing hook: an API path without its trailing slash whose twin with
    the slash exists is the old spelling of one operation: deprecated, and with an operationId of its
    own (operationIds must be unique, and drf-spectacular derives both from the same path words)."""
    paths = result.get("paths", {})
    for route, operations in paths.items():
        if route.endswith("/") or f"{route}/" not in paths:
            continue
        for method, operation in operations.items():
            if isinstance(operation, dict) and "operationId" in operation:
                operation["deprecated"] = True
                operation["operationId"] += "_without_slash"
                operation["description"] = (
                    f"Deprecated spelling of `{method.upper()} {route}/`, kept for existing clients. "
                    + operation.get("description", "")
                ).strip()
    return result
