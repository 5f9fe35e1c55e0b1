"""What the contract suite needs from each provider, beyond the ports themselves.

Each provider family implements one `Harness` (local: `harness_local.py`, GCP: `harness_gcp.py`).
The tests use only the ports plus these few set-up and observation hooks, so the same test
function proves the same behaviour everywhere.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import replace

from workloads.providers.base import MetricTarget, PoolSpec, Providers, QueueSpec


class Harness(ABC):
    name: str
    providers: Providers
    project: str = "contract-proj"
    region: str = "us-central1"

    # --- specs with fresh names, so tests never see each other's messages --------------------------
    def queue_spec(self, **overrides) -> QueueSpec:
        slug = overrides.pop("slug", f"c{uuid.uuid4().hex[:10]}")
        spec = QueueSpec(
            slug=slug,
            topic=f"projects/{self.project}/topics/{slug}",
            subscription=f"projects/{self.project}/subscriptions/{slug}-worker",
            dead_letter_topic=f"projects/{self.project}/topics/{slug}-dead-letter",
            dead_letter_subscription=f"projects/{self.project}/subscriptions/{slug}-dead-letter",
            ack_deadline_seconds=10,
            max_delivery_attempts=5,
            min_backoff_seconds=0,
            max_backoff_seconds=0,
        )
        return replace(spec, **overrides)

    def ready_queue(self, **overrides) -> QueueSpec:
        spec = self.queue_spec(**overrides)
        self.providers.queue.ensure_resources(spec)
        return spec

    def pool_spec(self, slug: str | None = None) -> PoolSpec:
        slug = slug or f"p{uuid.uuid4().hex[:10]}"
        return PoolSpec(slug=slug, worker_pool=f"projects/{self.project}/locations/{self.region}/workerPools/{slug}")

    def metric_target(self, slug: str) -> MetricTarget:
        return MetricTarget(
            slug=slug,
            subscription=f"projects/{self.project}/subscriptions/{slug}-worker",
            dead_letter_subscription=f"projects/{self.project}/subscriptions/{slug}-dead-letter",
            worker_pool=f"projects/{self.project}/locations/{self.region}/workerPools/{slug}",
        )

    # --- hooks each provider family implements ---------------------------------------------------------
    @abstractmethod
    def create_pool(self, spec: PoolSpec, *, instance_count: int) -> None:
        """Make the pool exist with this count (GCP: in the fake Cloud Run server)."""

    @abstractmethod
    def deploy_revision(self, spec: PoolSpec) -> None:
        """Roll the pool to a new revision (GCP: a deploy in the fake; local: what runfleet does when it starts)."""

    @abstractmethod
    def make_backlog(self, target: MetricTarget, count: int) -> None:
        """Arrange for the class to have `count` undelivered messages as the Metrics port sees them
        (local: publish them; GCP: the fake Monitoring server reports them)."""

    # One series() call may cost at most this many backend calls, whatever the number of classes.
    max_calls_per_series: int = 1

    @abstractmethod
    def count_metric_calls(self) -> int:
        """How many backend calls the Metrics port has made so far: on GCP the ListTimeSeries
        requests the fake Monitoring server received; locally the SQL statements the metrics
        adapter ran (its budget, `max_calls_per_series`, is a small constant)."""

    @abstractmethod
    def fail_next_pool_calls(self, code: str, times: int) -> bool:
        """Make the next `times` WorkerPools calls fail with a gRPC status `code` ("UNAVAILABLE",
        "PERMISSION_DENIED"). Returns False where faults cannot be injected (local)."""

    def close(self) -> None:  # noqa: B027 - an optional hook: most harnesses have nothing to release
        pass
