"""Dashboards: server time of the fleet overview and a class detail page with 200 classes and 30
days of rollups (minute rollups for every day, and the hourly rows the poller writes beside
them), against the same pages with only the last 3 days. Each page is requested through Django's
test client as a logged-in viewer (middleware, view, selectors, templates; no network), timed
around the request in this process. The two histories live in two tables that are swapped by
renaming (instant), so rounds alternate 30 d and 3 d and the machine's drifting load hits both
alike; each figure is the median over rounds of one request after a warm-up request. The ratio
30 d / 3 d shows whether the time grows with history (target <= 1.2); the budget of
150 ms per page (docs/architecture.md, "Performance budgets") is shown on its own line.

Rows are written with SQL (generate_series) shaped like real rollups, so filling takes seconds
per million rows. The 30-day range of the class detail and the 30-day cost report are timed too,
without a target: with 3 days of history they have less to read, so their ratio may grow (but
never beyond what the 30 days themselves hold, whatever lies before).
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

    from workloads.domain import histogram

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
                    queue_age_minutes, queue_age_good, latency_good,
                    executions, execution_errors, runtime_latency_buckets, runtime_latency_count, runtime_latency_sum)
                SELECT c.id, %s, g, 10, 100, 1, 2, 120, 100, 1, 100, 0, %s::jsonb, 100, 50.0, %s::jsonb,
                       g + interval '3 minutes', 120, %s, %s, %s, 0, 0, '[]'::jsonb, 0, 0
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
    from workloads.services.polling import metrics_poll
    from workloads.services.slo_evaluation import slo_alerts_evaluate

    with installed_metrics(FakeMetrics()) as fake:
        for metric in MetricKind:
            fake.set(metric, lambda slug, end: 1.0)
        fake.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: None)
        metrics_poll(now=now, window_minutes=5)
    slo_alerts_evaluate(now=now)


def _viewer_client():
    import secrets

    from django.contrib.auth import get_user_model
    from django.test import Client

    from controlplane.roles import Role
    from workloads.services.users import user_create

    # Another benchmark of the same run may have made it already (users survive reset_tables).
    user = get_user_model().objects.filter(username="bench-viewer").first() or user_create(
        actor=None, username="bench-viewer", role=Role.VIEWER, password=secrets.token_urlsafe(24)
    )
    client = Client()
    client.force_login(user)
    return client


def measure(client, url: str) -> tuple[float, float]:
    """(wall, CPU) milliseconds of one request. The CPU is this process's alone (middleware, view,
    selectors, templates; not PostgreSQL's): on a shared machine it moves far less with the load
    than the wall time does, so the notes give it beside the figure, which stays the wall time."""
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.get(url)
    wall, cpu = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return wall, cpu


def _timed(client, url: str, repeat: int, cpu: list | None = None) -> float:
    """Median wall milliseconds of `repeat` requests, after one to warm caches (templates, role,
    session, pages, the connection); each request's CPU milliseconds go to `cpu` when given."""
    client.get(url)
    samples = []
    for _ in range(repeat):
        wall, used = measure(client, url)
        samples.append(wall)
        if cpu is not None:
            cpu.append(used)
    return median(samples)


def analyze() -> None:
    """Fresh planner statistics on every table, as autovacuum keeps them in production: the bench
    server may run with autovacuum off (this machine's does), and a table never analyzed is
    planned from guesses (a hash join over every SLO status for one page's classes)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


OTHER = "bench_rollup_other"


def keep_recent_copy(now, *, days: float) -> None:
    """A copy of the rollups' last `days` (the short history) in a table of the same shape, to swap in."""
    from django.db import connection

    end = now.replace(second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {OTHER}")
        cursor.execute(f"CREATE TABLE {OTHER} (LIKE workloads_metricrollup INCLUDING ALL)")
        cursor.execute(
            f"INSERT INTO {OTHER} SELECT * FROM workloads_metricrollup "
            "WHERE bucket_start >= %s::timestamptz - %s::interval",
            [end, f"{days * 24} hours"],
        )
        cursor.execute(f"VACUUM ANALYZE {OTHER}")


def swap_histories() -> None:
    """Exchange the rollup table with the other history: renames only, instant, so the two
    histories can be measured alternately and the machine's drifting load hits both alike."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE workloads_metricrollup RENAME TO bench_rollup_swapping")
        cursor.execute(f"ALTER TABLE {OTHER} RENAME TO workloads_metricrollup")
        cursor.execute(f"ALTER TABLE bench_rollup_swapping RENAME TO {OTHER}")


def _rows() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM workloads_metricrollup")
        return cursor.fetchone()[0]


def run(args) -> list[Result]:
    from django.db import connection
    from django.utils import timezone

    # --quick, the test suite's smoke run: one round of each history (its figures are not judged).
    classes, short_days, long_days, rounds = (20, 1, 3, 1) if args.quick else (CLASSES, 3, 30, 15)
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
    rows = {long_days: fill(now, minute_days=long_days, hour_days=long_days)}
    _live_values(now)  # SLO status and live rows are stored, so pages read them alike in both histories
    analyze()
    keep_recent_copy(now, days=short_days)
    samples = {days: {name: [] for name in pages} for days in (short_days, long_days)}
    cpu = {name: [] for name in pages}  # with the long history
    current = long_days
    try:
        for round_number in range(rounds):
            order = (long_days, short_days) if round_number % 2 == 0 else (short_days, long_days)
            for days in order:
                if days != current:
                    swap_histories()
                    current = days
                    if days not in rows:
                        rows[days] = _rows()
                for name, (url, _) in pages.items():
                    samples[days][name].append(
                        _timed(client, url, repeat=1, cpu=cpu[name] if days == long_days else None)
                    )
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {OTHER}")  # whichever history it holds now
        fill(now, minute_days=0, hour_days=0)  # give the disk back
    timings = {days: {name: median(values) for name, values in by_page.items()} for days, by_page in samples.items()}

    shape = (
        f"{classes} classes; {long_days} d of minute + hourly rollups ({rows[long_days]:,} rows) "
        f"vs {short_days} d ({rows[short_days]:,} rows); {rounds} alternating round(s), median"
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
                extra={"url": url, "samples_ms": {str(days): samples[days][name] for days in samples}},
            )
        )
    for name in ("overview", "class detail"):
        results.append(
            Result(
                f"dashboards: {name} with {long_days} d, {classes} classes",
                timings[long_days][name],
                "ms",
                target=Target("<=", PAGE_BUDGET_MS, on="figure"),
                note=f"of which this process's CPU {median(cpu[name]):.0f} ms (median; the rest: PostgreSQL, waiting)",
                extra={"cpu_ms": cpu[name]},
            )
        )
    return results
