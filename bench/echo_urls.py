"""The product's URLs plus two bench-only endpoints served by the same gunicorn, middleware and
settings as the ingestion endpoint:

- `POST /bench/echo`: a bare Django JSON endpoint (parse the body, return it), so the ratio between
  it and ingestion is what ingestion itself costs;
- `POST /bench/durable`: the same plus the least durable work a request can do, one INSERT of the
  body committed on its own (no authentication, no lookup, no deduplication), into a scratch table
  (`DURABLE_TABLE`, created by the ingestion benchmark): the floor any durable endpoint stands on."""

import json

from django.db import connection
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


DURABLE_TABLE = "bench_durable_write"


@csrf_exempt
@require_POST
def durable(request):
    response = echo(request)
    if response.status_code == 200:
        with connection.cursor() as cursor:  # autocommit: the INSERT is its own transaction
            cursor.execute(f"INSERT INTO {DURABLE_TABLE} (body) VALUES (%s)", [request.body.decode()])
    return response


urlpatterns = [
    path("bench/echo", echo, name="bench-echo"),
    path("bench/durable", durable, name="bench-durable"),
    path("", include("controlplane.urls")),
]
