"""Telemetry timings with 200 classes as history grows: fleet overview, class detail, SLO evaluation,
cost report and a poll. Prints milliseconds and the ratio long-history / short-history (a ratio
near 1 means the cost does not grow with history). Not part of `make test`.

    createdb -h 127.0.0.1 -U postgres telemetry_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/telemetry_bench python -m bench.telemetry
    dropdb -h 127.0.0.1 -U postgres telemetry_bench

Rows are written with SQL (generate_series), shaped like real rollups, so filling takes seconds.
"""

import os
import statistics
import time
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings.base")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

CLASSES = 200
SHORT, LONG = {"minute_days": 1, "hour_days": 1}, {"minute_days": 3, "hour_days": 30}


def _timed(fn, repeat=5) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _setup_classes():
    from decimal import Decimal

    from workloads.models import CostRates, Slo, WorkloadClass

    rates, _ = CostRates.objects.get_or_create(name="bench", defaults={"vcpu_second": Decimal("0.000018")})
    schema = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
    for n in range(CLASSES):
        wc, created = WorkloadClass.objects.get_or_create(
            slug=f"bench-{n:03d}",
            defaults={
                "name": f"Bench {n}",
                "owner_team": f"team-{n % 7}",
                "payload_schema": schema,
                "idempotency_key_template": "{id}",
                "cost_rates": rates,
            },
        )
        if created:
            wc.fill_default_resource_names()
            wc.save()
            Slo.objects.create(workload_class=wc, kind="success_ratio", target_percent=Decimal("99"))
            Slo.objects.create(
                workload_class=wc, kind="queue_age", percentile=95, threshold_seconds=60, target_percent=Decimal("99")
            )
            Slo.objects.create(
                workload_class=wc,
                kind="completion_latency",
                percentile=95,
                threshold_seconds=2,
                target_percent=Decimal("99"),
            )


def _fill(now, *, minute_days: int, hour_days: int):
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
                [resolution, str(latency), ages, *events, end, f"{days} days", end, step, step],
            )
        cursor.execute("ANALYZE workloads_metricrollup")


def _measure(now) -> dict[str, float]:
    from tests.workloads.telemetry_doubles import FakeMetrics, installed_metrics
    from workloads.models import WorkloadClass
    from workloads.providers.base import MetricKind
    from workloads.selectors.telemetry import class_telemetry, fleet_overview
    from workloads.services.telemetry import cost_report, metrics_poll, slo_alerts_evaluate

    one = WorkloadClass.objects.get(slug="bench-007")
    results = {}
    with installed_metrics(FakeMetrics()) as fake:
        for metric in MetricKind:
            fake.set(metric, lambda slug, end: 1.0)
        fake.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: None)
        results["metrics_poll (200 classes x 10 min)"] = _timed(lambda: metrics_poll(now=now), repeat=3)
    results |= {
        "fleet_overview (200 classes)": _timed(lambda: fleet_overview(now=now)),
        "class detail 24h": _timed(lambda: class_telemetry(workload_class=one, range_key="24h", now=now)),
        "class detail 30d": _timed(lambda: class_telemetry(workload_class=one, range_key="30d", now=now)),
        "cost_report 30d by team": _timed(
            lambda: cost_report(start=now - timedelta(days=30), end=now, group_by="team", now=now)
        ),
        "slo_alerts_evaluate (600 SLOs)": _timed(lambda: slo_alerts_evaluate(now=now), repeat=3),
    }
    return results


def main():
    call_command("migrate", verbosity=0)
    _setup_classes()
    now = timezone.now()
    _fill(now, **SHORT)
    short = _measure(now)
    _fill(now, **LONG)
    long = _measure(now)
    print(f"{'':40} {'short (ms)':>11} {'long (ms)':>11} {'ratio':>7}")
    print(f"{'history':40} {'1d min, 1d hr':>11} {'3d min, 30d hr':>11}")
    for name in short:
        print(f"{name:40} {short[name]:11.1f} {long[name]:11.1f} {long[name] / short[name]:7.2f}")


if __name__ == "__main__":
    main()
