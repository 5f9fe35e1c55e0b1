"""The product's URLs plus two bench-only endpoints served by the same gunicorn, middleware and
settings as the ingestion endpoint:

- `POST /bench/echo`: a bare Django JSON endpoint (parse the body, return it), so the ratio between
  it and ingestion is what ingestion itself costs;
- `POST /bench/durable`: the same plus the least durable work a request can do, one INSERT of the
  body committed on its own (no authentication, no lookup, no deduplication), into a scratch table
  (`DURABLE_TABLE`, created by the ingestion benchmark): the floor any durable endpoint stands on;
- `POST /bench/grouped`: the echo plus the same INSERT done by group commit: the worker process's
  one writer thread writes the bodies of all requests waiting at that moment in one INSERT and one
  commit, and each request answers once its body is committed. The floor of a design that groups
  concurrent single events into shared transactions, to compare with the durable floor."""

import json
import threading
from dataclasses import dataclass, field

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


@dataclass
class _Waiting:
    body: str
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


class GroupCommitter:
    """One writer thread per worker process (started on first use, so after gunicorn's fork);
    request threads hand it their bodies and wait for the commit that holds them."""

    def __init__(self):
        self._waiting: list[_Waiting] = []
        self._arrived = threading.Condition()
        self._writer: threading.Thread | None = None

    def write(self, body: str) -> None:
        waiting = _Waiting(body)
        with self._arrived:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_forever, name="bench-group-commit", daemon=True)
                self._writer.start()
            self._waiting.append(waiting)
            self._arrived.notify()
        waiting.done.wait()
        if waiting.error is not None:
            raise waiting.error

    def _write_forever(self) -> None:
        while True:
            with self._arrived:
                while not self._waiting:
                    self._arrived.wait()
                group, self._waiting = self._waiting, []
            try:
                rows = ", ".join(["(%s)"] * len(group))
                with connection.cursor() as cursor:  # this thread's own connection, autocommit
                    cursor.execute(f"INSERT INTO {DURABLE_TABLE} (body) VALUES {rows}", [w.body for w in group])
            except Exception as exc:  # noqa: BLE001 - every waiting request fails with it (a 500)
                for waiting in group:
                    waiting.error = exc
                connection.close()  # reconnect for the next group
            finally:
                for waiting in group:
                    waiting.done.set()


_group_committer = GroupCommitter()


@csrf_exempt
@require_POST
def grouped(request):
    response = echo(request)
    if response.status_code == 200:
        _group_committer.write(request.body.decode())
    return response


urlpatterns = [
    path("bench/echo", echo, name="bench-echo"),
    path("bench/durable", durable, name="bench-durable"),
    path("bench/grouped", grouped, name="bench-grouped"),
    path("", include("controlplane.urls")),
]
