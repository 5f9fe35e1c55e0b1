"""Dashboards: server time of the fleet overview and a class detail page with 200 classes, first
with 3 days of rollups, then with 30 days (minute rollups for every day, and the hourly rows the
poller writes beside them). Each page is requested through Django's test client as a logged-in
viewer (middleware, view, selectors, templates; no network), timed around the request in this
process; the figure is the median of several requests after a warm-up. The ratio 30 d / 3 d shows
whether the time grows with history (target <= 1.2); DESIGN.md's budget of 150 ms per page is
shown on its own line.

Rows are written with SQL (generate_series) shaped like real rollups, so filling takes seconds
per million rows. The 30-day range of the class detail and the 30-day cost report are timed too,
without a target: with 3 days of history they have less to read, so their ratio is expected to
grow (but never beyond what the 30 days themselves hold, whatever lies before).
"""

from __future__ import annotations

import time

from bench.common import Result, Target, collect_static, make_classes, median, reset_tables

CLASSES = 200
PAGE_BUDGET_MS = 150.0
HISTORY_TARGET = Target("<=", 1.2)


def fill(now, *, minute_days: float, hour_days: float) -> int:
    """Replace all rollups with `minute_days` of minute rows and `hour_days` of hourly rows per
    class, ending now; returns the number of rows."""
    from django.db import connection

    from workloads.telemetry import histogram

    latency = histogram.from_values([0.05] * 60 + [0.4] * 30 + [3.0] * 10)
    end = now.replace(second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE workloads_metricrollup, workloads_classtelemetry")
        for resolution, days, step, ages, events in (
            ("minute", minute_days, "1 minute", "[]", (1, 1, 95)),
            ("hour", hour_days, "1 hour", str([10.0] * 55 + [90.0] * 5), (60, 55, 95 * 60)),
        ):
            cursor.execute(
                """
                INSERT INTO workloads_metricrollup (
                    workload_class_id, resolution, bucket_start, oldest_unacked_age_seconds, backlog,
                    dead_letter_backlog, instances, instance_seconds, completed, failed, records, tokens,
                    latency_buckets, latency_count, latency_sum, queue_ages, fetched_at, newest_sample_age_seconds,
                    queue_age_minutes, queue_age_good, latency_good)
                SELECT c.id, %s, g, 10, 100, 1, 2, 120, 100, 1, 100, 0, %s::jsonb, 100, 50.0, %s::jsonb,
                       g + interval '3 minutes', 120, %s, %s, %s
                FROM workloads_workloadclass c,
                     generate_series(%s::timestamptz - %s::interval, %s::timestamptz - %s::interval, %s::interval) g
                """,
                [resolution, str(latency), ages, *events, end, f"{days * 24} hours", end, step, step],
            )
        # As old rows are in production: hint bits set, visibility map current, statistics fresh.
        cursor.execute("VACUUM ANALYZE workloads_metricrollup")
        cursor.execute("SELECT count(*) FROM workloads_metricrollup")
        return cursor.fetchone()[0]


def _live_values(now) -> None:
    """Each class's live row and SLO status, as the poll and evaluation ticks leave them."""
    from tests.workloads.telemetry_doubles import FakeMetrics, installed_metrics
    from workloads.providers.base import MetricKind
    from workloads.services.telemetry import metrics_poll, slo_alerts_evaluate

    with installed_metrics(FakeMetrics()) as fake:
        for metric in MetricKind:
            fake.set(metric, lambda slug, end: 1.0)
        fake.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: None)
        metrics_poll(now=now, window_minutes=5)
    slo_alerts_evaluate(now=now)


def _viewer_client():
    import secrets

    from django.test import Client

    from controlplane.roles import Role
    from workloads.services.users import user_create

    user = user_create(actor=None, username="bench-viewer", role=Role.VIEWER, password=secrets.token_urlsafe(24))
    client = Client()
    client.force_login(user)
    return client


def _timed(client, url: str, repeat: int) -> float:
    """Median milliseconds of `repeat` requests, after one to warm caches (templates, role, session)."""
    client.get(url)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
    return median(samples)


def run(args) -> list[Result]:
    from django.utils import timezone

    classes, short_days, long_days, repeat = (20, 1, 3, 3) if args.quick else (CLASSES, 3, 30, 15)
    reset_tables()
    collect_static()
    made = make_classes(classes, prefix="bench")
    detail = f"/classes/{made[7].slug}/"
    pages = {
        "overview": ("/", HISTORY_TARGET),
        "class detail": (detail, HISTORY_TARGET),
        "class detail, 30 d range": (f"{detail}?range=30d", None),
        "cost report, 30 d by team": ("/cost/?period=30d&group_by=team", None),
    }
    client = _viewer_client()
    now = timezone.now()
    timings, rows = {}, {}
    for days in (short_days, long_days):
        rows[days] = fill(now, minute_days=days, hour_days=days)
        _live_values(now)
        timings[days] = {name: _timed(client, url, repeat) for name, (url, _) in pages.items()}
    fill(now, minute_days=0, hour_days=0)  # give the disk back

    shape = (
        f"{classes} classes; {long_days} d of minute + hourly rollups ({rows[long_days]:,} rows) "
        f"vs {short_days} d ({rows[short_days]:,} rows); median of {repeat}"
    )
    results = []
    for name, (url, target) in pages.items():
        results.append(
            Result(
                f"dashboards: {name}, {long_days} d vs {short_days} d history",
                timings[long_days][name],
                "ms",
                baseline=timings[short_days][name],
                baseline_name=f"the same page with {short_days} d of history",
                target=target,
                note=shape if name == "overview" else "",
                extra={"url": url},
            )
        )
    for name in ("overview", "class detail"):
        results.append(
            Result(
                f"dashboards: {name} with {long_days} d, {classes} classes",
                timings[long_days][name],
                "ms",
                target=Target("<=", PAGE_BUDGET_MS, on="figure"),
            )
        )
    return results
