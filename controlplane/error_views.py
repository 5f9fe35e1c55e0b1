"""Error pages that answer in the caller's language: JSON in the API's error shape under /api/
(a client that parses JSON must not meet an HTML page), the HTML templates everywhere else."""

from django.http import JsonResponse
from django.views import defaults


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
