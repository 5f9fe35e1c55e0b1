"""Ingestion throughput: events/s through `POST /api/v1/classes/<slug>/events/`, one event per request
and batches of 500, against a bare Django JSON echo endpoint served by the same gunicorn (same
workers, threads, middleware and settings) and driven by the same client in the same run.

A third endpoint, the echo plus one committed INSERT of the body (`/bench/durable`), measures the
floor any durable endpoint stands on; ingestion's ratio to it is printed without a target. A fourth,
the same INSERT by group commit (`/bench/grouped`: concurrent requests of a worker process share one
INSERT and one commit), measures the floor of a design that groups single events into shared
transactions; its ratio to the echo is printed without a target. Ingestion groups its single
events that way (workloads/services/ingestion_groups.py), so that floor is what its write path
can reach; the rest of the gap is each request's own work before its group.

Rounds alternate echo, durable, grouped, single and batch (and reverse the order every other
round), so drift in the machine's load hits all kinds alike; each figure is the median over rounds.
A rate is the events answered over the time from the first send to the last answer of the phase.
Every event is unique (no deduplication short-cut) and requests carry an ingest-scoped token, as
producers do. Run once against the local provider on PostgreSQL and once against Google's Pub/Sub emulator.

Targets (docs/architecture.md, "Performance budgets"): single >= 0.6 x the echo endpoint's requests/s; batch >= 10 x the
single-event rate in events/s.
"""

from __future__ import annotations

import itertools
import uuid

from bench.client import Request, closed_loop
from bench.common import (
    GUNICORN_THREADS,
    GUNICORN_WORKERS,
    Gunicorn,
    Result,
    Target,
    emulator_missing,
    emulator_queue,
    gcp_server_env,
    ingest_token,
    make_classes,
    median,
    reset_tables,
)

BATCH = 500
# A batch request takes seconds when 8 run at once: its phases run longer, so the last requests
# still finishing after the deadline (while fewer are in flight) are a small part of the phase.
BATCH_PHASE_FACTOR = 3
CONNECTIONS = GUNICORN_WORKERS * GUNICORN_THREADS  # one request in flight per server thread
SINGLE_TARGET = Target(">=", 0.6)
BATCH_TARGET = Target(">=", 10.0)


def _event(run: str, kind: str, n: int) -> bytes:
    return b'{"tenant_id":"%s","document_id":"%s-%d","revision":1}' % (run.encode(), kind.encode(), n)


def request_factories(slug: str, run: str) -> dict[str, callable]:
    path = f"/api/v1/classes/{slug}/events/"
    return {
        "echo": lambda n: Request("/bench/echo", _event(run, "e", n), 200, b'"tenant_id"'),
        "durable": lambda n: Request("/bench/durable", _event(run, "d", n), 200, b'"tenant_id"'),
        "grouped": lambda n: Request("/bench/grouped", _event(run, "g", n), 200, b'"tenant_id"'),
        "single": lambda n: Request(path, _event(run, "s", n), 202, b'"status":"accepted"'),
        "batch": lambda n: Request(
            path,
            b"[" + b",".join(_event(run, f"b{n}", i) for i in range(BATCH)) + b"]",
            202,
            b'"accepted":%d' % BATCH,
            events=BATCH,
        ),
    }


def measure(
    server: Gunicorn, *, slug: str, token: str, rounds: int, seconds: float, label: str, warm_up: bool = True
) -> list[Result]:
    factories = request_factories(slug, uuid.uuid4().hex[:8])
    headers = {"Authorization": f"Bearer {token}"}  # sent to the echo too, so requests are the same size
    numbers = itertools.count()

    def drive(kind: str, duration: float):
        return closed_loop(
            server.host,
            server.port,
            factories[kind],
            duration=duration,
            connections=CONNECTIONS,
            headers=headers,
            numbers=numbers,
        )

    # Imports, connections, provider clients and caches; a smoke run only warms the cheap kinds.
    for kind in factories if warm_up else ("echo", "single"):
        drive(kind, 1.0 if warm_up else 0.2)
    rates: dict[str, list[float]] = {kind: [] for kind in factories}
    errors: dict[str, list[str]] = {kind: [] for kind in factories}
    for round_number in range(rounds):
        order = list(factories) if round_number % 2 == 0 else list(reversed(factories))
        for kind in order:
            outcome = drive(kind, seconds * (BATCH_PHASE_FACTOR if kind == "batch" else 1))
            if outcome.ok_events == 0:
                raise RuntimeError(f"{kind} ({label}): no request succeeded; {outcome.first_error}")
            rates[kind].append(outcome.events_per_second)
            if outcome.errors:
                errors[kind].append(f"{outcome.errors} errors, first: {outcome.first_error}")
    echo, durable, grouped, single, batch = (
        median(rates[kind]) for kind in ("echo", "durable", "grouped", "single", "batch")
    )
    shape = (
        f"{CONNECTIONS} connections, {rounds} rounds of {seconds:g} s per kind (batch: x{BATCH_PHASE_FACTOR}), median"
    )
    echo_name = "bare Django JSON echo on the same gunicorn (requests/s)"

    def line(name, figure, unit, baseline, baseline_name, error_kinds, target=None) -> Result:
        return Result(
            f"ingestion {name} ({label})",
            figure,
            unit,
            baseline=baseline,
            baseline_name=baseline_name,
            target=target,
            note="; ".join(error for kind in error_kinds for error in errors[kind]),
            extra={"rounds": rates, "shape": shape},
        )

    return [
        line("single", single, "events/s", echo, echo_name, ("single", "echo"), SINGLE_TARGET),
        line(
            "single vs one durable INSERT",
            single,
            "events/s",
            durable,
            "the echo plus one committed INSERT of the body (requests/s): the durable floor",
            ("durable",),
        ),
        line("group-commit floor vs echo", grouped, "requests/s", echo, echo_name, ("grouped",)),
        line(
            f"batch of {BATCH}",
            batch,
            "events/s",
            single,
            "single-event ingestion (events/s)",
            ("batch",),
            BATCH_TARGET,
        ),
    ]


def _create_durable_table() -> None:
    from django.db import connection

    from bench.echo_urls import DURABLE_TABLE

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {DURABLE_TABLE}")
        cursor.execute(f"CREATE TABLE {DURABLE_TABLE} (id bigserial PRIMARY KEY, body jsonb NOT NULL)")


def run(args) -> list[Result]:
    from workloads.providers import get_providers
    from workloads.providers.specs import queue_spec

    rounds, seconds = (1, 0.5) if args.quick else (3, 5.0)
    reset_tables()
    _create_durable_table()
    token = ingest_token()
    [local_class] = make_classes(1, prefix="ingest-local", slos=False)
    get_providers().queue.ensure_resources(queue_spec(local_class))
    with Gunicorn() as server:
        results = measure(
            server,
            slug=local_class.slug,
            token=token,
            rounds=rounds,
            seconds=seconds,
            label="local, PostgreSQL",
            warm_up=not args.quick,
        )

    queue = emulator_queue()
    if queue is None:
        return results + [
            Result(f"ingestion {kind} (Pub/Sub emulator)", None, "events/s", skipped=emulator_missing())
            for kind in ("single", "single vs one durable INSERT", f"batch of {BATCH}")
        ]
    [gcp_class] = make_classes(1, prefix="ingest-gcp", slos=False)
    queue.ensure_resources(queue_spec(gcp_class))
    with Gunicorn(env=gcp_server_env()) as server:
        results += measure(
            server,
            slug=gcp_class.slug,
            token=token,
            rounds=rounds,
            seconds=seconds,
            label="Pub/Sub emulator",
            warm_up=not args.quick,
        )
    return results
