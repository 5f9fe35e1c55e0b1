from functools import lru_cache

from django.contrib.staticfiles import finders
from django.http import Http404, HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

ICON = "img/favicon.svg"


@lru_cache(maxsize=1)
def _icon_bytes() -> bytes | None:
    path = finders.find(ICON)
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()


@require_GET
@cache_control(public=True, max_age=86400)
def favicon(request):
    """The product's icon at /favicon.ico, where browsers ask for it on pages that link none
    (the admin, JSON answers, the API docs). Browsers take an SVG whatever the name."""
    data = _icon_bytes()
    if data is None:
        raise Http404("No icon.")
    return HttpResponse(data, content_type="image/svg+xml")
