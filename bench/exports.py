"""Exports: one Prometheus scrape of `/metrics` with 1,000 classes against the same scrape with
100, each class with every metric polled (a latency histogram too) and its SLOs evaluated, as the
ticks leave them. The response must stay bounded: the same number of queries whatever the number
of classes, server time and bytes per class flat, and the size a scraper receives (gzip) is shown.
"""

from __future__ import annotations

import gzip
import time

from bench.common import Result, Target, make_classes, median, reset_tables


def _fill(count: int, now) -> None:
    from tests.workloads.telemetry_doubles import FakeMetrics, distribution, installed_metrics, lognormal_latencies
    from workloads.providers.base import MetricKind
    from workloads.services.polling import metrics_poll
    from workloads.services.slo_evaluation import slo_alerts_evaluate

    reset_tables()
    make_classes(count, prefix=f"export{count}")
    latencies = distribution(lognormal_latencies(40, median=1.5))
    with installed_metrics(FakeMetrics()) as fake:
        for metric in MetricKind:
            fake.set(metric, lambda slug, end: 3.0)
        fake.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: latencies)
        metrics_poll(now=now, window_minutes=5)
    slo_alerts_evaluate(now=now)


def _scraper():
    import secrets

    from django.test import Client

    from controlplane.roles import Role
    from workloads.services.tokens import api_token_issue
    from workloads.services.users import user_create

    user = user_create(actor=None, username="bench-scraper", role=Role.VIEWER, password=secrets.token_urlsafe(24))
    _token, raw = api_token_issue(actor=None, user=user, name="bench prometheus", scopes=["read"])
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def _measure(client, count: int, *, repeat: int, now) -> dict:
    from django.db import connection

    _fill(count, now)
    client.get("/metrics")  # warm-up
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get("/metrics")
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET /metrics answered {response.status_code}")
    # Counted with a wrapper: CaptureQueriesContext loses them (each request resets the query log).
    # The fewer of two scrapes: the token's last-used time is written at most once a minute.
    counts = []
    for _ in range(2):
        queries = []
        with connection.execute_wrapper(lambda execute, sql, *rest, q=queries: q.append(sql) or execute(sql, *rest)):
            plain = client.get("/metrics").content
        counts.append(len(queries))
    zipped = client.get("/metrics", HTTP_ACCEPT_ENCODING="gzip")
    if zipped.get("Content-Encoding") != "gzip" or gzip.decompress(zipped.content).count(b"\n") != plain.count(b"\n"):
        raise RuntimeError("the gzipped scrape differs from the plain one")
    return {
        "seconds": median(seconds),
        "queries": min(counts),
        "bytes": len(plain),
        "gzip_bytes": len(zipped.content),
        "lines": plain.count(b"\n"),
    }


def run(args) -> list[Result]:
    from django.utils import timezone

    (few, many), repeat = ((10, 100), 2) if args.quick else ((100, 1000), 5)
    now = timezone.now()
    client = _scraper()
    small = _measure(client, few, repeat=repeat, now=now)
    large = _measure(client, many, repeat=repeat, now=now)
    reset_tables()
    sizes = f"{many} classes: {large['lines']} lines, {large['bytes'] / 1024:.0f} KiB plain"
    return [
        Result(
            f"exports: /metrics queries, {many} vs {few} classes",
            large["queries"],
            "queries",
            baseline=small["queries"],
            baseline_name=f"the same scrape with {few} classes",
            target=Target("==", 1.0),
            note="database queries of one scrape",
        ),
        Result(
            f"exports: /metrics time per class, {many} vs {few} classes",
            large["seconds"] * 1000 / many,
            "ms",
            baseline=small["seconds"] * 1000 / few,
            baseline_name=f"the same scrape with {few} classes, per class",
            target=Target("<=", 1.5),
            note=f"median of {repeat} scrapes (Django test client, bearer token); {sizes}",
            extra={"small": small, "large": large},
        ),
        Result(
            f"exports: /metrics bytes per class, {many} vs {few} classes (gzip)",
            large["gzip_bytes"] / many,
            "B",
            baseline=small["gzip_bytes"] / few,
            baseline_name=f"the same scrape with {few} classes, per class",
            target=Target("<=", 1.1),
            note=f"what Prometheus receives (it asks for gzip); {sizes}",
        ),
    ]
