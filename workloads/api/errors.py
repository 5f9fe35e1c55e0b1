"""One JSON error shape for the whole API:

    {"type": "validation_error", "detail": "Invalid input.", "errors": {"slos.0.target_percent": ["..."]}}

`errors` (validation only) maps dotted field paths to messages, whether the problem was found by
the serializer (types, unknown fields) or by the model's validation in a service.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from workloads.errors import DATABASE_RETRY_AFTER_SECONDS, ApplicationError
from workloads.models import AuditResult
from workloads.providers.base import ProviderError

logger = logging.getLogger(__name__)


def flatten_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            for sub_path, messages in flatten_errors(value, path).items():
                flat.setdefault(sub_path, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            flat[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                if item:
                    flat.update(flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        flat[prefix or "non_field_errors"] = [str(detail)]
    return flat


def _django_validation_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {
            ("non_field_errors" if field == "__all__" else field): messages
            for field, messages in exc.message_dict.items()
        }
    return {"non_field_errors": exc.messages}


def validation_response(errors: dict[str, list[str]]) -> Response:
    return Response(
        {"type": "validation_error", "detail": "Invalid input: see errors.", "errors": errors},
        status=status.HTTP_400_BAD_REQUEST,
    )


def _record_denied(request, exc) -> None:
    from workloads.services.audit import audit_refused_request

    audit_refused_request(
        request=request,
        action="request.denied",
        result=AuditResult.DENIED,
        reason=str(getattr(exc, "detail", exc)),
    )


def _record_refused(request, exc: ApplicationError) -> None:
    """A change a service's guard refused (409 nothing to replay, 400 empty filter, ...) is
    audited like a denied one: who asked for what, and why it was not done."""
    if request is None or exc.status >= 500:
        return
    from workloads.services.audit import audit_refused_request

    audit_refused_request(
        request=request,
        action="request.refused",
        result=AuditResult.FAILURE,
        reason=exc.message,
        code=exc.code,
        workload_class_slug=_class_slug(request),
    )


def _class_slug(request) -> str:
    """The class a refused request was about: the URL's slug, or the body's `workload_class`."""
    kwargs = getattr(getattr(request, "resolver_match", None), "kwargs", None) or {}
    value = kwargs.get("slug")
    if value is None:
        try:
            data = request.data
        except Exception:  # an unparsable body: the refusal is recorded without a class
            data = None
        value = data.get("workload_class") if isinstance(data, dict) else None
    return value[:48] if isinstance(value, str) else ""


# A transient provider error was already retried by the adapter; the caller may try again later.
PROVIDER_RETRY_AFTER_SECONDS = 30


def provider_error_response(exc: ProviderError) -> Response:
    """502 when someone must act (the message says what: a role to grant, a resource to create),
    503 with Retry-After when the provider may recover by itself."""
    logger.warning("provider error: %s (%s)", exc, exc.code or "no code")
    body = {
        "type": "provider_error",
        "detail": exc.message,
        "code": exc.code,
        "resource": exc.resource,
        "permanent": exc.permanent,
    }
    if exc.permanent:
        return Response(body, status=status.HTTP_502_BAD_GATEWAY)
    return Response(
        body,
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(PROVIDER_RETRY_AFTER_SECONDS)},
    )


def _database_unavailable(exc) -> Response:
    # The transaction was rolled back by the server when the connection died, so nothing of the
    # request was written: the client may safely send it again.
    logger.error("database unavailable: %s: %s", type(exc).__name__, str(exc).strip()[:300])
    response = Response(
        {"type": "database_unavailable", "detail": "The database is unreachable; nothing was saved. Retry shortly."},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
    )
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, ProviderError):
        return provider_error_response(exc)
    if isinstance(exc, (OperationalError, InterfaceError)):
        return _database_unavailable(exc)
    if isinstance(exc, DjangoValidationError):
        return validation_response(_django_validation_errors(exc))
    if isinstance(exc, exceptions.ValidationError):
        return validation_response(flatten_errors(exc.detail))
    if isinstance(exc, ApplicationError):
        _record_refused(request, exc)
        body = {"type": exc.code, "detail": exc.message, **exc.extra}
        return Response(body, status=exc.status)
    if isinstance(exc, (exceptions.PermissionDenied, DjangoPermissionDenied)) and request is not None:
        _record_denied(request, exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
    code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
    response.data = {"type": str(code), "detail": str(detail)}
    return response
