"""The worker kit against real queues: the embedded local provider on PostgreSQL and on SQLite (what
`make run` uses), and Google's Pub/Sub emulator through the real client library (marker
`emulator`). The Worker runs in-process on threads; its consumer threads see only committed rows,
so these are transactional tests, flushing only the workloads app's tables afterwards."""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connections

from tests.factories import DOCUMENT_SCHEMA
from workloads.models import CostRates, WorkloadClass, WorkResult
from workloads.models.environments import Environment, default_environment_pk
from workloads.providers.base import (
    ATTR_CLASS,
    ATTR_IDEMPOTENCY_KEY,
    ATTR_INGESTED_AT,
    ATTR_SCHEMA_VERSION,
    ATTR_TRACE_ID,
    OutboundMessage,
    Providers,
)
from workloads.providers.specs import queue_spec
from workloads.runtime.worker import Worker, worker_config

LOCAL_APPS = ["workloads", "workloads.providers.local"]


def _db(alias: str):
    return pytest.mark.django_db(transaction=True, databases=[alias], available_apps=LOCAL_APPS)


PROVIDERS = [
    pytest.param("local-postgres", id="local-postgres", marks=_db("default")),
    pytest.param("local-sqlite", id="local-sqlite", marks=_db("contract_sqlite")),
    pytest.param("gcp", id="emulator", marks=[pytest.mark.emulator, _db("default")]),
]


class Setup:
    """One provider family for a test: its ports, the database alias results go to, and helpers."""

    def __init__(self, name: str, providers: Providers, alias: str):
        self.name = name
        self.providers = providers
        self.alias = alias

    def make_class(self, **fields) -> WorkloadClass:
        slug = fields.pop("slug", f"wk-{uuid.uuid4().hex[:10]}")
        rates = CostRates(name=f"rates-{slug}", per_record=Decimal("0.001"), per_1k_tokens=Decimal("0.5"))
        rates.save(using=self.alias)
        # The class's environment lives in this class's database; holding the object keeps
        # validation from looking it up on `default`.
        environment = Environment.objects.using(self.alias).get(pk=default_environment_pk(self.alias))
        values = dict(
            environment=environment,
            slug=slug,
            name=slug,
            owner_team="runtime",
            payload_schema=DOCUMENT_SCHEMA,
            idempotency_key_template="{tenant_id}:{document_id}:{revision}",
            max_concurrency=4,
            max_delivery_attempts=5,
            min_backoff_seconds=0,
            max_backoff_seconds=0,
            cost_rates=rates,
        )
        values.update(fields)
        workload_class = WorkloadClass(**values)
        # Uniqueness and the price sheet's key are checked on `default`; this class may live elsewhere.
        workload_class.full_clean(exclude=["cost_rates"], validate_unique=False, validate_constraints=False)
        workload_class.save(using=self.alias)
        self.providers.queue.ensure_resources(queue_spec(workload_class))
        return workload_class

    def worker(self, workload_class: WorkloadClass, handler, **kwargs) -> Worker:
        return Worker(
            worker_config(workload_class),
            handler=handler,
            providers=self.providers,
            using=self.alias,
            instance_id="test-1",
            **kwargs,
        )

    def publish(self, workload_class: WorkloadClass, payloads, *, key=None, ingested_at=None) -> list[str]:
        ingested_at = ingested_at or datetime.now(UTC)
        messages = []
        for payload in payloads:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            unit_key = key or (
                f"{payload['tenant_id']}:{payload['document_id']}:{payload['revision']}"
                if isinstance(payload, dict)
                else uuid.uuid4().hex
            )
            messages.append(
                OutboundMessage(
                    data=data,
                    attributes={
                        ATTR_CLASS: workload_class.slug,
                        ATTR_IDEMPOTENCY_KEY: unit_key,
                        ATTR_SCHEMA_VERSION: "1",
                        ATTR_INGESTED_AT: ingested_at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z",
                        ATTR_TRACE_ID: uuid.uuid4().hex,
                    },
                )
            )
        return self.providers.queue.publish(queue_spec(workload_class), messages)

    def results(self, workload_class: WorkloadClass, **filters) -> list[WorkResult]:
        return list(
            WorkResult.objects.using(self.alias)
            .filter(workload_class=workload_class, **filters)
            .order_by("completed_at", "pk")
        )

    def dead_letters(self, workload_class: WorkloadClass, *, expect: int, timeout: float = 15.0):
        """Wait for `expect` dead letters and return them (acked, so they are read once)."""
        spec = queue_spec(workload_class)
        found = []
        deadline = time.monotonic() + timeout
        while len(found) < expect and time.monotonic() < deadline:
            batch = self.providers.queue.peek_dead_letters(spec, max_messages=10)
            if batch:
                self.providers.queue.ack_dead_letters(spec, [m.ack_id for m in batch])
                found += batch
            else:
                time.sleep(0.1)
        return found

    def backlog(self, workload_class: WorkloadClass, timeout: float = 1.0) -> list:
        """Messages still in the class's queue (pulled and put straight back)."""
        spec = queue_spec(workload_class)
        messages = self.providers.queue.pull(spec, max_messages=100, timeout=timeout)
        if messages:
            self.providers.queue.nack(spec, [m.ack_id for m in messages])
        return messages


@pytest.fixture(params=PROVIDERS)
def setup(request):
    if request.param == "gcp":
        from tests.contract.harness_gcp import TEST_BACKOFF
        from workloads.providers.gcp.monitoring import CloudMonitoringMetrics
        from workloads.providers.gcp.pubsub import PubSubQueue
        from workloads.providers.local import LocalWorkerPools

        request.getfixturevalue("pubsub_emulator")
        publisher, subscriber, ordered_publisher = request.getfixturevalue("pubsub_clients")
        fakes = request.getfixturevalue("gcp_fakes")
        fakes.reset()
        request.getfixturevalue("transactional_db")
        providers = Providers(
            queue=PubSubQueue(
                publisher=publisher, ordered_publisher=ordered_publisher, subscriber=subscriber, backoff=TEST_BACKOFF
            ),
            pools=LocalWorkerPools(),
            metrics=CloudMonitoringMetrics(fakes.monitoring_client, project="local-project", backoff=TEST_BACKOFF),
            name="gcp",
        )
        made = Setup("gcp", providers, "default")
        made.fakes = fakes
        yield made
        fakes.reset()
        return
    from workloads.providers.local import build_local_providers

    alias = "default" if request.param == "local-postgres" else "contract_sqlite"
    request.getfixturevalue("transactional_db")
    yield Setup(request.param, build_local_providers(using=alias), alias)


@pytest.fixture
def local_setup(transactional_db):
    """The local provider on PostgreSQL only, for behaviours that do not depend on the queue."""
    from workloads.providers.local import build_local_providers

    return Setup("local-postgres", build_local_providers(), "default")


@contextmanager
def running(worker: Worker, *, report_interval_seconds: float = 3600.0):
    """Run the worker on a thread until the block ends; yields the stop event."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def target():
        try:
            worker.run(stop, report_interval_seconds=report_interval_seconds)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failure.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, name="test-worker")
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the worker did not stop"
    assert not failure, failure


def wait_for(read, predicate=bool, *, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if predicate(value):
            return value
        assert time.monotonic() < deadline, f"timed out; last value {value!r}"
        time.sleep(interval)


def document(n: int = 1, **overrides) -> dict:
    payload = {"tenant_id": "acme", "document_id": f"doc-{n}", "revision": 1}
    payload.update(overrides)
    return payload


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
