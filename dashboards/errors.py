"""Provider and database errors as people read them: what failed and what to fix, never a stack
trace."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string

from workloads.errors import DATABASE_RETRY_AFTER_SECONDS
from workloads.providers.base import ProviderError

logger = logging.getLogger(__name__)

_FIXES = {
    "PERMISSION_DENIED": (
        "Grant the control plane's service account the IAM role this call needs on {resource} "
        "(see docs/operations: IAM roles), then reload."
    ),
    "NOT_FOUND": (
        "Create {resource}, or correct its name in the class settings (an admin can re-run "
        '"ensure resources"), then reload.'
    ),
    "UNAUTHENTICATED": (
        "The control plane has no valid Google credentials: check the service account or "
        "GOOGLE_APPLICATION_CREDENTIALS on the server."
    ),
    "INVALID_ARGUMENT": "The provider refused a setting of this class: check the class settings against its limits.",
    "FAILED_PRECONDITION": "The resource is not in a state that allows this: check it in the console, then retry.",
}
_TRANSIENT_FIX = (
    "The provider is unavailable or throttling; the call was already retried. Reload in a minute; "
    "if it keeps failing, check the provider's status page and quotas."
)
_DEFAULT_FIX = "Check the provider configuration (CONTROLPLANE_PROVIDER and its settings) and the server logs."


def provider_error_context(error: ProviderError, *, doing: str = "A call to the cloud provider") -> dict:
    """`what_failed` and `what_to_fix` for `dashboards/partials/provider_error.html`."""
    resource = error.resource or "the resource"
    if not error.permanent:
        fix = _TRANSIENT_FIX
    else:
        fix = _FIXES.get(error.code, _DEFAULT_FIX).format(resource=resource)
    return {
        "what_failed": f"{doing} failed: {error.message}",
        "what_to_fix": fix,
        "error_code": error.code,
        "error_resource": error.resource,
    }


_DATABASE_UNAVAILABLE = {
    "what_failed": "The control plane could not reach its database (the connection failed or dropped); "
    "nothing of this request was saved.",
    "what_to_fix": f"Retry in {DATABASE_RETRY_AFTER_SECONDS} seconds. If it lasts, check the database server "
    "and DATABASE_URL on the control plane. On Google Cloud, queues and worker pools keep running meanwhile.",
}


class ErrorPageMiddleware:
    """A ProviderError or a lost database connection that escapes a page's view becomes a page (or,
    for htmx, a fragment) saying what failed and what to fix: 503 with Retry-After when it may
    pass, 502 when someone must act. The API maps these errors itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if request.path.startswith("/api/"):
            return None
        if isinstance(exception, (OperationalError, InterfaceError)):
            return self._database_unavailable(request, exception)
        if not isinstance(exception, ProviderError):
            return None
        logger.warning("provider error on %s: %s (%s)", request.path, exception, exception.code or "no code")
        context = provider_error_context(exception)
        status = 503 if not exception.permanent else 502
        template = (
            "dashboards/partials/provider_error.html" if getattr(request, "htmx", False) else "provider_error.html"
        )
        return render(request, template, context, status=status)

    @staticmethod
    def _database_unavailable(request, exception):
        """Rendered without the request's context processors: they read the session, the user's
        role and the incident banner from the database that just failed."""
        logger.warning("database unavailable on %s: %s", request.path, exception)
        fragment = getattr(request, "htmx", False)
        template = "dashboards/partials/provider_error.html" if fragment else "database_unavailable.html"
        page = render_to_string(template, {**_DATABASE_UNAVAILABLE, "retry_url": request.get_full_path()})
        response = HttpResponse(page, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
