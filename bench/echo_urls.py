"""The product's URLs plus `POST /bench/echo`: a bare Django JSON endpoint (parse the body, return
it) served by the same gunicorn, middleware and settings as the ingestion endpoint, so the ratio
between the two is what ingestion itself costs."""

import json

from django.http import HttpResponseBadRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def echo(request):
    try:
        body = json.loads(request.body)
    except ValueError:
        return HttpResponseBadRequest("not JSON")
    return JsonResponse(body, safe=False)


urlpatterns = [
    path("bench/echo", echo, name="bench-echo"),
    path("", include("controlplane.urls")),
]
