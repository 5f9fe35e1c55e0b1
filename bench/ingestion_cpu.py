"""CPU of single-event ingestion, in-process: `python -m bench.ingestion_cpu [--database NAME]
[--requests N] [--profile FILE]`.

Not one of `python -m bench`'s benchmarks (it has no target): a repeatable measurement of what one
request costs, to compare two branches in the same session. It serves
`POST /api/v1/classes/<slug>/events/` through Django's WSGI handler, called in this process with
production settings (DEBUG off, the local provider on a PostgreSQL bench database), each request a
new unique event with an ingest-scoped token, as gunicorn's worker would hand it over:

- lone: N requests one after another (each its own group);
- group of 8: N requests from 8 threads at once (their groups form as under gunicorn's threads);
- echo: the bench's bare JSON echo on the same handler, the reference.

For each it prints the CPU per request of this process (time.process_time) and of its PostgreSQL
backends (utime + stime of /proc/<pid>/stat of every pg_backend_pid() the threads used; the server
must run on this machine), and the Python function calls per lone request (cProfile's count).
`--profile FILE` writes a cProfile of the lone requests (pstats format) and prints its top lines.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import os
import pstats
import sys
import threading
import time
import uuid

from bench.common import (
    database_url,
    drop_database,
    ingest_token,
    make_classes,
    migrate,
    recreate_database,
    reset_tables,
    setup_django,
)

GROUP_THREADS = 8
WARM_UP_CALLS = 15
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _backend_cpu(pids: set[int]) -> float:
    """CPU seconds (user + system) the PostgreSQL backends `pids` used so far."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


class Driver:
    """Builds WSGI environs and calls the handler, as gunicorn's worker does."""

    def __init__(self, slug: str, token: str):
        from django.core.handlers.wsgi import WSGIHandler

        self.handler = WSGIHandler()
        self.path = f"/api/v1/classes/{slug}/events/"
        self.token = token
        self.run = uuid.uuid4().hex[:8]
        self.numbers = itertools.count()
        self.backends: set[int] = set()
        self._lock = threading.Lock()

    def _environ(self, path: str, body: bytes) -> dict:
        return {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Bearer {self.token}",
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }

    def call(self, path: str, expected: str) -> None:
        n = next(self.numbers)
        body = b'{"tenant_id":"%s","document_id":"d-%d","revision":1}' % (self.run.encode(), n)
        answer: list[str] = []
        chunks = self.handler(self._environ(path, body), lambda status, headers: answer.append(status))
        content = b"".join(chunks)
        if not answer[0].startswith(expected):
            raise RuntimeError(f"{path}: {answer[0]} {content[:300]!r}")

    def single(self) -> None:
        self.call(self.path, "202")

    def echo(self) -> None:
        self.call("/bench/echo", "200")

    def note_backend(self) -> None:
        from django.db import connection

        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        with self._lock:
            self.backends.add(pid)


def _measure(driver: Driver, kind: str, requests: int, threads: int) -> tuple[float, float]:
    """(process CPU, backend CPU) per request in ms, for `requests` calls of `kind` from `threads` threads."""
    call = getattr(driver, kind)
    driver.backends = set()  # this measurement's threads' connections (earlier threads' are closed)
    per_thread = requests // threads
    barrier = threading.Barrier(threads + 1)
    one_at_a_time = threading.Lock()

    def work():
        driver.note_backend()
        # Warm this thread's new connection alone, so that it leads its own groups: psycopg prepares
        # a statement on its 5th run and PostgreSQL settles on a generic plan 5 runs later, as
        # gunicorn's long-lived threads have long done.
        with one_at_a_time:
            for _ in range(WARM_UP_CALLS):
                call()
        barrier.wait()
        for _ in range(per_thread):
            call()
        barrier.wait()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    cpu, backend = time.process_time(), _backend_cpu(driver.backends)
    barrier.wait()
    cpu, backend = time.process_time() - cpu, _backend_cpu(driver.backends) - backend
    for worker in workers:
        worker.join()
    done = per_thread * threads
    return cpu / done * 1000, backend / done * 1000


def _calls_per_request(driver: Driver, requests: int, profile_path: str) -> float:
    profiler = cProfile.Profile(time.process_time)  # CPU, not wall: waits on the server are not ours
    profiler.enable()
    for _ in range(requests):
        driver.single()
    profiler.disable()
    stats = pstats.Stats(profiler)
    if profile_path:
        stats.dump_stats(profile_path)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
    return stats.total_calls / requests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingestion_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="controlplane_bench_cpu", help="bench database name (dropped at the end)")
    parser.add_argument("--requests", type=int, default=800, help="requests per measurement (default 800)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per kind, alternated (default 3)")
    parser.add_argument("--profile", default="", help="write a cProfile of the lone requests here")
    args = parser.parse_args(argv)
    url = database_url(args.database)
    recreate_database(url)
    setup_django(url)
    from django.conf import settings

    settings.ROOT_URLCONF = "bench.echo_urls"  # as bench.settings: production settings plus /bench/echo
    try:
        migrate()
        reset_tables()
        token = ingest_token()
        [workload_class] = make_classes(1, prefix="ingest-cpu", slos=False)
        from workloads.providers import get_providers
        from workloads.providers.specs import queue_spec

        get_providers().queue.ensure_resources(queue_spec(workload_class))
        driver = Driver(workload_class.slug, token)
        for _ in range(200):  # imports, caches, the connection
            driver.single()
            driver.echo()
        kinds = [("echo", "echo", 1), ("lone", "single", 1), (f"group of {GROUP_THREADS}", "single", GROUP_THREADS)]
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name, _kind, _threads in kinds}
        for _ in range(args.repeat):
            for name, kind, threads in kinds:
                figures[name].append(_measure(driver, kind, args.requests, threads))
        calls = _calls_per_request(driver, min(args.requests, 300), args.profile)
        load = os.getloadavg()
        print(f"CPU per request, ms (median of {args.repeat} x {args.requests} requests; load {load[0]:.1f})")
        for name, values in figures.items():
            process = sorted(v[0] for v in values)[len(values) // 2]
            backend = sorted(v[1] for v in values)[len(values) // 2]
            spread = ", ".join(f"{v[0]:.2f}+{v[1]:.2f}" for v in values)
            total = process + backend
            print(f"  {name:12} process {process:6.3f}  backend {backend:6.3f}  total {total:6.3f}  [{spread}]")
        print(f"  Python calls per lone request: {calls:,.0f}")
    finally:
        drop_database(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
