"""Load: single events through the ingestion endpoint at a fixed rate, 200/s (100/s with --quick;
--load-rate sets it), open loop (sends follow a clock, never the answers), for 60 s (3 s with
--quick, the test suite's smoke run), on gunicorn with the local provider on PostgreSQL:
p50/p95/p99 latency (from each request's scheduled time, so queueing shows) and errors. The
baseline is the bare echo endpoint at the same rate on the same server, just before. Loopback
only; it stops by itself.
"""

from __future__ import annotations

import itertools
import uuid

from bench.client import open_loop, percentile
from bench.common import Gunicorn, Result, Target, ingest_token, make_classes, reset_tables
from bench.ingestion import request_factories

DEFAULT_RATE = 200.0  # events per second
QUICK_RATE = 100.0  # a smoke run on a busy machine should not queue for seconds


def run(args) -> list[Result]:
    from workloads.providers import get_providers
    from workloads.providers.specs import queue_spec

    duration, echo_duration = (3.0, 1.0) if args.quick else (60.0, 15.0)
    rate = getattr(args, "load_rate", None) or (QUICK_RATE if args.quick else DEFAULT_RATE)
    reset_tables()
    token = ingest_token()
    [workload_class] = make_classes(1, prefix="load", slos=False)
    get_providers().queue.ensure_resources(queue_spec(workload_class))
    factories = request_factories(workload_class.slug, uuid.uuid4().hex[:8])
    headers = {"Authorization": f"Bearer {token}"}
    numbers = itertools.count()
    with Gunicorn() as server:

        def drive(kind: str, seconds: float):
            return open_loop(
                server.host, server.port, factories[kind], rate=rate, duration=seconds, headers=headers, numbers=numbers
            )

        drive("single", 0.5)  # warm up
        echo = drive("echo", echo_duration)
        ingest = drive("single", duration)

    shape = f"{rate:g} events/s for {duration:g} s (echo: {echo_duration:g} s), open loop"
    results = [
        Result(
            f"load: throughput at {rate:g}/s",  # answered, over the time from the first send to the last answer
            ingest.requests_per_second,
            "events/s",
            baseline=rate,
            baseline_name="the rate asked for",
            target=Target(">=", 0.99),
            note=shape,
        )
    ]
    for p in (50, 95, 99):
        results.append(
            Result(
                f"load: p{p} latency at {rate:g}/s",
                percentile(ingest.latencies, p) * 1000,
                "ms",
                baseline=percentile(echo.latencies, p) * 1000,
                baseline_name="bare echo endpoint at the same rate",
            )
        )
    results.append(
        Result(
            f"load: errors at {rate:g}/s",
            ingest.errors,
            "errors",
            baseline=ingest.requests,
            baseline_name="requests sent",
            baseline_unit="requests",
            target=Target("==", 0, on="figure"),
            note=ingest.first_error,
            extra={"statuses": dict(ingest.statuses), "echo_errors": echo.errors},
        )
    )
    return results
