"""Rollups: how fast completion events become per-class minute rollups through the real path, and
how that compares to the fastest way to put the same rows into PostgreSQL.

Workers report their completions, failures, records, tokens and latency histogram once a minute
(worker reports, here of the local provider: a row each with its latency buckets in one column,
written up front). Timed: `metrics_poll` over the window (the Metrics port's queries, folding into minute rollups, the
hourly rows of the hours touched and each class's live values, in one transaction). Baseline: a
COPY of the very minute rows the fold produced into a scratch table shaped like the rollup table
(same columns and indexes) in the same run: the ceiling. Rounds alternate the two; medians. Each
round then polls the same window again (every minute already written: the steady state, where the
fold compares each minute with what it held), reported beside the ceiling without a target.
Target (docs/architecture.md): the fold at 0.25x the ceiling or more.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

from bench.common import Result, Target, make_classes, median, reset_tables

SCRATCH = "bench_rollup_ceiling"


def _write_reports(classes, *, minutes: int, end, events_per_minute: int) -> int:
    """One report per class and minute, with `events_per_minute` completions; returns the total."""
    from workloads.domain import histogram
    from workloads.providers.local.models import LocalWorkerReport

    rng = random.Random(11)
    reports, events = [], 0
    for wc in classes:
        for minute in range(minutes):
            interval_end = end - timedelta(minutes=minute, seconds=5)
            completed = events_per_minute + rng.randint(-5, 5)
            failed = rng.randint(0, 3)
            latencies = [rng.lognormvariate(0, 0.8) * 0.3 for _ in range(completed + failed)]
            counts = histogram.from_values(latencies)
            reports.append(
                LocalWorkerReport(
                    slug=wc.slug,
                    worker_pool=wc.worker_pool,
                    instance_id="bench-0",
                    interval_start=interval_end - timedelta(minutes=1),
                    interval_end=interval_end,
                    interval_end_ms=round(interval_end.timestamp() * 1000),
                    completed=completed,
                    failed=failed,
                    records=completed * 10,
                    tokens=completed * 100,
                    latency_count=len(latencies),
                    latency_sum=sum(latencies),
                    latency_buckets=counts,
                )
            )
            events += completed + failed
    LocalWorkerReport.objects.bulk_create(reports, batch_size=2000)
    return events


def _clear_rollups() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE workloads_metricrollup, workloads_classtelemetry, workloads_pollrun, workloads_slostatus"
        )


def _copy_columns() -> list[str]:
    from workloads.models import MetricRollup

    return [f.column for f in MetricRollup._meta.concrete_fields if f.column != "id"]


def _minute_rows(columns: list[str]) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(columns)} FROM workloads_metricrollup WHERE resolution = 'minute'")
        return cursor.fetchall()


def _copy(rows: list[tuple], columns: list[str]) -> float:
    """COPY `rows` into the scratch table in one transaction; returns the seconds it took."""
    import json

    from django.db import connection, transaction

    json_columns = {i for i, name in enumerate(columns) if name in ("latency_buckets", "queue_ages")}
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {SCRATCH}")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.copy(f"COPY {SCRATCH} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([json.dumps(v) if i in json_columns else v for i, v in enumerate(row)])
    return time.perf_counter() - started


def run(args) -> list[Result]:
    from django.db import connection
    from django.utils import timezone

    from workloads.providers import set_providers
    from workloads.providers.local import build_local_providers
    from workloads.services.polling import metrics_poll

    class_count, minutes, rounds = (20, 10, 2) if args.quick else (200, 60, 3)
    events_per_minute = 50
    reset_tables()
    set_providers(build_local_providers())
    try:
        classes = make_classes(class_count, prefix="rollup")
        now = timezone.now().replace(second=30, microsecond=0)
        events = _write_reports(classes, minutes=minutes, end=now, events_per_minute=events_per_minute)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
            cursor.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
            cursor.execute(f"CREATE TABLE {SCRATCH} (LIKE workloads_metricrollup INCLUDING ALL)")
        columns = _copy_columns()
        fold_times, copy_times, repoll_times, rows = [], [], [], 0
        for _ in range(rounds):
            _clear_rollups()
            started = time.perf_counter()
            summary = metrics_poll(now=now, window_minutes=minutes)
            fold_times.append(time.perf_counter() - started)
            if summary.failed:
                raise RuntimeError(f"poll failed: {[run.error for run in summary.failed]}")
            minute_rows = _minute_rows(columns)
            rows = len(minute_rows)
            if rows < class_count * (minutes - 1):
                raise RuntimeError(f"the fold wrote {rows} minute rows for {class_count} classes x {minutes} min")
            copy_times.append(_copy(minute_rows, columns))
            # Every poll but a class's first finds its window's minutes written: the steady state.
            started = time.perf_counter()
            summary = metrics_poll(now=now, window_minutes=minutes)
            repoll_times.append(time.perf_counter() - started)
            if summary.failed:
                raise RuntimeError(f"re-poll failed: {[run.error for run in summary.failed]}")
    finally:
        set_providers(None)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
    fold, ceiling, repoll = median(fold_times), median(copy_times), median(repoll_times)
    shape = f"{class_count} classes x {minutes} min, {events:,} events, {rows:,} minute rows, {rounds} rounds, median"
    return [
        Result(
            "rollups: completion events folded",
            events / fold,
            "events/s",
            baseline=events / ceiling,
            baseline_name="COPY of the same minute rows into a scratch table (ceiling)",
            target=Target(">=", 0.25),
            note=shape,
            extra={"fold_seconds": fold_times, "copy_seconds": copy_times, "repoll_seconds": repoll_times},
        ),
        Result(
            "rollups: minute rows written",
            rows / fold,
            "rows/s",
            baseline=rows / ceiling,
            baseline_name="COPY of the same rows (ceiling)",
        ),
        Result(
            "rollups: re-poll of the same window",
            rows / repoll,
            "rows/s",
            baseline=rows / ceiling,
            baseline_name="COPY of the same rows (ceiling)",
            note="every minute already written, as for every poll after a class's first",
        ),
    ]
