"""Scale: the fleet at 1,000 classes against 100 (--quick: 40 against 10).

- Pages: server time of the fleet overview and a class detail with each fleet size, through
  Django's test client as a logged-in viewer (as the dashboards benchmark times them), each class
  with a day of minute rollups and 30 days of hourly ones (what the poller and the downsample
  leave; 30 days of minute rows for 1,000 classes, 43 million, take too long to write here).
  The two fleets live in two databases (the small one a copy of the bench database made before
  the large fleet is added), so rounds alternate the sizes, each round in the other order, and a
  load that drifts during the run hits both alike; each figure is the median over rounds of one
  request after a warm-up. Targets (docs/architecture.md, "Performance budgets"): the overview
  within 1.5x of 100 classes, a class detail flat (within 1.2x).
- Polling: ListTimeSeries calls of one tick through the real Cloud Monitoring adapter against the
  in-process gRPC fake, with each fleet size: the same count.
- Beat ticks with 1,000 classes, each printed as its time / its interval (target: under 1): the
  metric poll (gRPC fake as above), SLO evaluation, the scaling controller, pool holds' expiry,
  the dead-letter sync and the triage rules (the embedded local provider: queue and pools in the
  bench database, one pool and its topics and subscriptions per class).
"""

from __future__ import annotations

import time

from bench.common import Result, Target, collect_static, make_classes, median, reset_tables
from bench.dashboards import _live_values, _timed, _viewer_client, analyze, fill

OVERVIEW_TARGET = Target("<=", 1.5)
DETAIL_TARGET = Target("<=", 1.2)
TICK_TARGET = Target("<", 1.0)


PAGES = {"overview": "/", "class detail": "/classes/{slug}/"}


def _use_database(name: str) -> None:
    """Point Django's connection at another database of the same server (the next query reconnects)."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name


def _copy_database(name: str) -> str:
    """A copy of the bench database as it is now (CREATE DATABASE ... TEMPLATE: a file copy,
    seconds), named <name>_small; returns the copy's name."""
    from django.db import connections

    from bench.common import database_url, recreate_database

    copy = f"{name}_small"
    connections.close_all()  # a template database must have no other session
    recreate_database(database_url(copy), template=name)
    return copy


def _alternating_pages(client, slug: str, databases: dict[int, str], rounds: int):
    """Median wall ms and this process's CPU ms of each page with each fleet size (its database),
    the sizes alternated within every round."""
    sizes = sorted(databases)
    walls = {size: {name: [] for name in PAGES} for size in sizes}
    cpus = {size: {name: [] for name in PAGES} for size in sizes}
    for round_number in range(rounds):
        for size in sizes if round_number % 2 == 0 else reversed(sizes):
            _use_database(databases[size])
            for name, url in PAGES.items():
                walls[size][name].append(_timed(client, url.format(slug=slug), repeat=1, cpu=cpus[size][name]))
    return walls, cpus


def _poll_calls(small: int, large: int) -> tuple[float, float, float]:
    """(calls with `small` classes, calls with `large`, seconds of the tick with `large`)."""
    from bench.common import BENCH_PROJECT
    from bench.polling import _measure
    from tests.contract.fakes.monitoring import FakeMonitoring
    from tests.contract.fakes.server import GrpcServer
    from workloads.providers import set_providers
    from workloads.providers.base import Providers
    from workloads.providers.gcp import monitoring_client
    from workloads.providers.gcp.monitoring import CloudMonitoringMetrics

    monitoring = FakeMonitoring()
    server = GrpcServer(*monitoring.handlers())
    client = monitoring_client(server.address)
    metrics = CloudMonitoringMetrics(client, project=BENCH_PROJECT)
    set_providers(Providers(queue=None, pools=None, metrics=metrics, name="gcp"))
    try:
        small_tick = _measure(monitoring, metrics, small, repeat=1)
        large_tick = _measure(monitoring, metrics, large, repeat=1)
    finally:
        set_providers(None)
        client.transport.close()
        server.stop()
    return small_tick.calls, large_tick.calls, large_tick.seconds


def _local_ticks(classes, now) -> dict[str, tuple[float, int]]:
    """Seconds of each tick with these classes on the local provider, and its interval."""
    from django.conf import settings

    from workloads.providers import set_providers
    from workloads.providers.local import build_local_providers
    from workloads.providers.specs import pool_spec, queue_spec
    from workloads.services.deadletter_mirror import dead_letters_sync
    from workloads.services.incidents import pool_holds_expire
    from workloads.services.scaling import scaling_controller_tick
    from workloads.services.slo_evaluation import slo_alerts_evaluate
    from workloads.services.triage import triage_rules_run

    providers = build_local_providers()
    set_providers(providers)
    try:
        for wc in classes:
            providers.queue.ensure_resources(queue_spec(wc), apply=True)
            providers.pools.ensure(pool_spec(wc), initial_instances=1)
        ticks = {
            "SLO evaluation": (lambda: slo_alerts_evaluate(now=now), settings.TELEMETRY_ALERTS_INTERVAL_SECONDS),
            "scaling controller": (
                lambda: scaling_controller_tick(now=now),
                settings.SCALING_CONTROLLER_INTERVAL_SECONDS,
            ),
            "pool holds expiry": (lambda: pool_holds_expire(now=now), settings.POOL_HOLDS_EXPIRY_INTERVAL_SECONDS),
            "dead-letter sync": (lambda: dead_letters_sync(now=now), settings.DEAD_LETTER_SYNC_INTERVAL_SECONDS),
            "triage rules": (lambda: triage_rules_run(now=now), settings.TRIAGE_INTERVAL_SECONDS),
        }
        measured = {}
        for name, (tick, interval) in ticks.items():
            started = time.perf_counter()
            tick()
            measured[name] = (time.perf_counter() - started, interval)
        return measured
    finally:
        set_providers(None)


def _by_size(samples, page: str) -> dict[str, list[float]]:
    return {str(size): by_page[page] for size, by_page in samples.items()}


def _cpu_words(cpu, page: str) -> str:
    small, large = sorted(cpu)
    ratio = cpu[large][page] / cpu[small][page] if cpu[small][page] else float("nan")
    return (
        f"this process's CPU (moves less with the load; PostgreSQL's time is not in it): {cpu[large][page]:.0f} ms vs "
        f"{cpu[small][page]:.0f} ms, {ratio:.2f}x"
    )


def run(args) -> list[Result]:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from bench.common import database_url, drop_database

    small, large, rounds = (10, 40, 3) if args.quick else (100, 1000, 11)
    small_calls, large_calls, poll_seconds = _poll_calls(small, large)

    reset_tables()
    collect_static()
    client = _viewer_client()
    classes = make_classes(small, prefix="scale")
    now = timezone.now()
    rows = {}
    bench_database = connection.settings_dict["NAME"]
    databases = {}
    try:
        for count in (small, large):
            if count > len(classes):
                classes += make_classes(count - len(classes), prefix="scale-more")
            rows[count] = fill(now, minute_days=1, hour_days=30)
            _live_values(now)
            analyze()
            databases[count] = bench_database if count == large else _copy_database(bench_database)
        walls, cpus = _alternating_pages(client, classes[7].slug, databases, rounds)
    finally:
        _use_database(bench_database)
        if databases.get(small, bench_database) != bench_database:
            drop_database(database_url(databases[small]))
    pages = {size: {name: median(values) for name, values in by_page.items()} for size, by_page in walls.items()}
    cpu = {size: {name: median(values) for name, values in by_page.items()} for size, by_page in cpus.items()}
    ticks = {"metric poll": (poll_seconds, settings.TELEMETRY_POLL_INTERVAL_SECONDS)}
    ticks.update(_local_ticks(classes, now))
    fill(now, minute_days=0, hour_days=0)  # give the disk back

    history = f"1 d of minute and 30 d of hourly rollups ({rows[large]:,} vs {rows[small]:,} rows)"
    shape = f"{large} vs {small} classes, {history}"
    results = [
        Result(
            f"scale: overview, {large} vs {small} classes",
            pages[large]["overview"],
            "ms",
            baseline=pages[small]["overview"],
            baseline_name=f"the overview with {small} classes",
            target=OVERVIEW_TARGET,
            note=f"{shape}; median of {rounds} rounds alternating the sizes; {_cpu_words(cpu, 'overview')}",
            extra={"samples_ms": _by_size(walls, "overview"), "cpu_ms": _by_size(cpus, "overview")},
        ),
        Result(
            f"scale: class detail, {large} vs {small} classes",
            pages[large]["class detail"],
            "ms",
            baseline=pages[small]["class detail"],
            baseline_name=f"the same class's page with {small} classes",
            target=DETAIL_TARGET,
            note=_cpu_words(cpu, "class detail"),
            extra={"samples_ms": _by_size(walls, "class detail"), "cpu_ms": _by_size(cpus, "class detail")},
        ),
        Result(
            f"scale: polling calls per tick, {large} vs {small} classes",
            large_calls,
            "calls",
            baseline=small_calls,
            baseline_name=f"the same tick with {small} classes",
            target=Target("==", 1.0),
        ),
    ]
    for name, (seconds, interval) in ticks.items():
        results.append(
            Result(
                f"scale: {name} tick with {large} classes",
                seconds,
                "s",
                baseline=interval,
                baseline_name="the tick's interval",
                target=TICK_TARGET,
            )
        )
    return results
