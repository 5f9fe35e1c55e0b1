"""Polling: provider calls and wall time of one `metrics_poll` tick with 20 and with 200 classes,
through the real Cloud Monitoring client and adapter against the in-process gRPC fake of the
contract tests. Calls are counted at the fake. Targets (docs/architecture.md, "Performance
budgets"): the same number of calls whatever the number of classes (one per metric type), and a
tick's wall time growing less than the number of classes does (its ratio under 10 for 10x).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from bench.common import BENCH_PROJECT, Result, Target, make_classes, median, reset_tables

WINDOW_MINUTES = 10


def _seed(fake, metrics, classes, *, now) -> None:
    """What Monitoring would hold for these classes: queue and pool gauges (system metrics) for
    every minute of the window, and one worker report per class and minute (custom metrics,
    written through the adapter like the worker kit does)."""
    from workloads.providers.base import LATENCY_BUCKET_BOUNDS, Distribution, WorkerReport

    buckets = [0] * (len(LATENCY_BUCKET_BOUNDS) + 1)
    buckets[20] = 40
    minutes = [now - timedelta(minutes=m, seconds=10) for m in range(WINDOW_MINUTES)]
    for n, wc in enumerate(classes):
        subscription = wc.subscription.rsplit("/", 1)[1]
        dead_letters = wc.dead_letter_subscription.rsplit("/", 1)[1]
        pool = wc.worker_pool.rsplit("/", 1)[1]
        points = [(moment.timestamp(), n % 50) for moment in minutes]
        for metric, labels in (
            ("pubsub.googleapis.com/subscription/oldest_unacked_message_age", {"subscription_id": subscription}),
            ("pubsub.googleapis.com/subscription/num_undelivered_messages", {"subscription_id": subscription}),
            ("pubsub.googleapis.com/subscription/num_undelivered_messages", {"subscription_id": dead_letters}),
        ):
            fake.seed(
                metric,
                resource_type="pubsub_subscription",
                resource_labels={"project_id": BENCH_PROJECT, **labels},
                points=points,
            )
        fake.seed(
            "run.googleapis.com/container/instance_count",
            resource_type="cloud_run_worker_pool",
            resource_labels={"project_id": BENCH_PROJECT, "location": "us-central1", "worker_pool_name": pool},
            metric_labels={"state": "active"},
            points=points,
        )
    metrics.write_worker_reports(
        [
            WorkerReport(
                slug=wc.slug,
                worker_pool=wc.worker_pool,
                interval_start=moment - timedelta(minutes=1),
                interval_end=moment,
                completed=40,
                failed=1,
                records=400,
                tokens=0,
                latency=Distribution(count=40, sum=12.0, bucket_counts=tuple(buckets)),
                instance_id="bench-0",
            )
            for wc in classes
            for moment in reversed(minutes)
        ]
    )


@dataclass
class _Tick:
    calls: float  # ListTimeSeries calls per poll
    seconds: float  # median wall time of a poll
    cpu: float  # median CPU seconds of this process per poll (the product's and the in-process fake's)
    fake_cpu: float  # median CPU seconds of the fake's server threads answering the calls


def _measure(fake, metrics, count: int, *, repeat: int) -> _Tick:
    """Calls, wall time and CPU of one poll with `count` classes."""
    from django.utils import timezone

    from workloads.services.polling import metrics_poll

    reset_tables()
    fake.reset()
    classes = make_classes(count, prefix=f"poll{count}")
    now = timezone.now()
    _seed(fake, metrics, classes, now=now)
    calls, seconds, cpu, fake_cpu = [], [], [], []
    for _ in range(repeat):
        before, fake_before = fake.list_calls, fake.list_cpu_seconds
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = metrics_poll(now=now, window_minutes=WINDOW_MINUTES)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        calls.append(fake.list_calls - before)
        fake_cpu.append(fake.list_cpu_seconds - fake_before)
        if summary.failed:
            raise RuntimeError(f"poll failed: {[run.error for run in summary.failed]}")
        if summary.rollups_written < count * (WINDOW_MINUTES - 1):
            raise RuntimeError(f"{summary.rollups_written} rollups for {count} classes x {WINDOW_MINUTES} min")
    if len(set(calls)) != 1:
        raise RuntimeError(f"calls per poll varied between polls: {calls}")
    return _Tick(calls[0], median(seconds), median(cpu), median(fake_cpu))


def run(args) -> list[Result]:
    from tests.contract.fakes.monitoring import FakeMonitoring
    from tests.contract.fakes.server import GrpcServer
    from workloads.providers import set_providers
    from workloads.providers.base import Providers
    from workloads.providers.gcp import monitoring_client
    from workloads.providers.gcp.monitoring import CloudMonitoringMetrics

    (few, many), repeat = ((5, 50), 1) if args.quick else ((20, 200), 5)
    monitoring = FakeMonitoring()
    server = GrpcServer(*monitoring.handlers())
    client = monitoring_client(server.address)
    metrics = CloudMonitoringMetrics(client, project=BENCH_PROJECT)
    set_providers(Providers(queue=None, pools=None, metrics=metrics, name="gcp"))
    try:
        small = _measure(monitoring, metrics, few, repeat=repeat)
        large = _measure(monitoring, metrics, many, repeat=repeat)
    finally:
        set_providers(None)
        client.transport.close()
        server.stop()
    return [
        Result(
            f"polling: provider calls per tick, {many} vs {few} classes",
            large.calls,
            "calls",
            baseline=small.calls,
            baseline_name=f"the same tick with {few} classes",
            target=Target("==", 1.0),
            note=f"ListTimeSeries calls counted at the gRPC fake; {WINDOW_MINUTES}-minute window",
        ),
        Result(
            f"polling: wall time per tick, {many} vs {few} classes",
            large.seconds * 1000,
            "ms",
            baseline=small.seconds * 1000,
            baseline_name=f"the same tick with {few} classes",
            target=Target("<", many / few),  # sub-linear in the number of classes
            # The CPU beside the wall time: a loaded machine stretches the wall time, and the
            # in-process fake's share is Monitoring's work, not the product's.
            note=(
                f"median of {repeat} polls; CPU per poll {large.cpu * 1000:,.0f} ms vs {small.cpu * 1000:,.0f} ms"
                f" ({large.cpu / small.cpu:.1f}x), of which the fake answering the calls"
                f" {large.fake_cpu * 1000:,.0f} ms vs {small.fake_cpu * 1000:,.0f} ms"
            ),
            extra={
                "cpu_ms": {str(many): large.cpu * 1000, str(few): small.cpu * 1000},
                "fake_cpu_ms": {str(many): large.fake_cpu * 1000, str(few): small.fake_cpu * 1000},
            },
        ),
    ]
