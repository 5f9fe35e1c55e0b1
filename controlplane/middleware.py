import ipaddress
import re
import uuid

from django.conf import settings

from controlplane import request_context

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _source_ip(request) -> str | None:
    """The client's address: the peer's, or behind trusted proxies the entry the outermost of them
    appended to X-Forwarded-For.

    Each proxy appends the address it received the request from, so the client can write anything
    to the left of what our proxies added: the leftmost entry is whatever the client chose (it
    bypassed the per-address login limit and forged the audit address). Counting
    TRUSTED_PROXY_HOPS entries from the right lands on the one our outermost proxy wrote."""
    remote_addr = _valid_ip(request.META.get("REMOTE_ADDR") or "")
    if not settings.TRUST_X_FORWARDED_FOR:
        return remote_addr
    entries = [entry for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()]
    if not entries:
        return remote_addr
    # Fewer entries than hops: every entry was written by our proxies, the leftmost is the client.
    appended_by_outermost_proxy = entries[max(0, len(entries) - settings.TRUSTED_PROXY_HOPS)]
    return _valid_ip(appended_by_outermost_proxy) or remote_addr


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
