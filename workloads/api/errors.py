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
    user = getattr(request, "user", None)
    if request.method in ("GET", "HEAD", "OPTIONS") or not user or not user.is_authenticated:
        return
    from workloads.services.audit import audit_event_record

    try:
        audit_event_record(
            actor=user,
            action="request.denied",
            target_repr=f"{request.method} {request.path}"[:255],
            result=AuditResult.DENIED,
            extra={"reason": str(getattr(exc, "detail", exc))},
        )
    except Exception:  # never turn a 403 into a 500 because the audit write failed
        logger.exception("could not record a denied request")


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
