import re
import uuid

from django.conf import settings

from controlplane import request_context

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _source_ip(request) -> str | None:
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def _channel(path: str) -> str:
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "ui"


class RequestContextMiddleware:
    """Gives every request an id (kept from X-Request-ID when well-formed) and records where it
    came from, for audit events and logs; echoes the id back in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        context = request_context.RequestContext(
            request_id=request_id, source_ip=_source_ip(request), via=_channel(request.path)
        )
        token = request_context.activate(context)
        try:
            response = self.get_response(request)
        finally:
            request_context.deactivate(token)
        response["X-Request-ID"] = request_id
        return response
