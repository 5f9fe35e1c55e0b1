"""Error pages that answer in the caller's language: JSON in the API's error shape under /api/
(a client that parses JSON must not meet an HTML page), the HTML templates everywhere else.

Under DEBUG Django answers a 404 or an uncaught exception with its technical page instead of
these handlers. `make run` runs with DEBUG (auto-reload, the demo's settings) for people trying the
product, who should meet the product's pages: with PRODUCT_ERROR_PAGES_IN_DEBUG on,
ProductErrorPagesMiddleware serves them anyway, except under /admin/ (a Django screen for admins,
where the technical page helps). A 403 is never technical: Django always uses its handler."""

import logging

from django.conf import settings
from django.http import Http404, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults

request_logger = logging.getLogger("django.request")


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request, exception):
    if _is_api(request):
        return JsonResponse({"type": "not_found", "detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse(
            {"type": "server_error", "detail": "Something went wrong on our side; it has been logged."}, status=500
        )
    return defaults.server_error(request)


class ProductErrorPagesMiddleware:
    """Under DEBUG with PRODUCT_ERROR_PAGES_IN_DEBUG: the product's 404 and 500 (JSON under /api/)
    instead of Django's technical pages, outside /admin/. Without DEBUG Django already uses the
    handlers above, so this does nothing."""

    def __init__(self, get_response):
        self.get_response = get_response

    def _active(self, request) -> bool:
        return (
            settings.DEBUG
            and getattr(settings, "PRODUCT_ERROR_PAGES_IN_DEBUG", False)
            and not request.path.startswith("/admin/")
        )

    def __call__(self, request):
        if self._active(request):
            # A path no URL pattern matches fails before any view or process_exception runs, and
            # Django turns it into the technical page on the spot: find it first. (CommonMiddleware,
            # earlier in the chain, still redirects /path to /path/ when that one exists.)
            try:
                resolve(request.path_info, getattr(request, "urlconf", None))
            except Resolver404 as exception:
                return page_not_found(request, exception)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not self._active(request):
            return None
        if isinstance(exception, Http404):
            return page_not_found(request, exception)
        # Logged as Django logs an uncaught exception, since this answer stops it propagating.
        request_logger.error(
            "Internal Server Error: %s",
            request.path,
            exc_info=exception,
            extra={"status_code": 500, "request": request},
        )
        return server_error(request)
