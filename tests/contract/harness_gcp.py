"""The contract harness for the Google adapters: Pub/Sub on Google's emulator, Cloud Run Admin and
Cloud Monitoring on in-process gRPC fakes, all reached through the real client libraries."""

from __future__ import annotations

import time

from tests.contract.harness import Harness
from workloads.providers.base import MetricTarget, OutboundMessage, PoolSpec, Providers
from workloads.providers.gcp.cloudrun import CloudRunWorkerPools
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.monitoring import CloudMonitoringMetrics
from workloads.providers.gcp.pubsub import PubSubQueue

# Short waits keep retry tests quick; the policy itself is the production one.
TEST_BACKOFF = Backoff(initial=0.05, maximum=0.5, deadline=10.0)
# Leases extended 10 s at a time (the library's least): a message released as a stream closes,
# whose nack the emulator ignores (docs/gcp.md), comes back within 10 s instead of 60 s or more.
TEST_LEASE_EXTENSION_SECONDS = 10
BACKLOG_METRIC = "pubsub.googleapis.com/subscription/num_undelivered_messages"


class GcpHarness(Harness):
    name = "gcp"

    def __init__(self, *, publisher, ordered_publisher, subscriber, fakes):
        self.fakes = fakes
        self.providers = Providers(
            queue=PubSubQueue(
                publisher=publisher,
                ordered_publisher=ordered_publisher,
                subscriber=subscriber,
                backoff=TEST_BACKOFF,
                max_lease_extension_seconds=TEST_LEASE_EXTENSION_SECONDS,
            ),
            pools=CloudRunWorkerPools(fakes.run_client, backoff=TEST_BACKOFF, operation_timeout=30),
            metrics=CloudMonitoringMetrics(fakes.monitoring_client, project=self.project, backoff=TEST_BACKOFF),
            name="gcp",
        )

    def create_pool(self, spec: PoolSpec, *, instance_count: int) -> None:
        self.fakes.run.add_pool(spec.worker_pool, instance_count=instance_count)

    def deploy_revision(self, spec: PoolSpec) -> None:
        self.fakes.run.roll_revision(spec.worker_pool)

    def make_backlog(self, target: MetricTarget, count: int) -> None:
        # Real messages in the emulator, and the backlog Monitoring would then report (the emulator
        # feeds no metrics): one sample a minute over the last five minutes.
        spec = self.ready_queue(slug=target.slug)
        assert spec.subscription == target.subscription
        self.providers.queue.publish(spec, [OutboundMessage(f"backlog-{i}".encode()) for i in range(count)])
        now = time.time()
        self.fakes.monitoring.seed(
            BACKLOG_METRIC,
            resource_type="pubsub_subscription",
            resource_labels={"project_id": self.project, "subscription_id": target.subscription.rsplit("/", 1)[1]},
            points=[(now - minutes * 60, count) for minutes in range(5)],
        )

    def count_metric_calls(self) -> int:
        return self.fakes.monitoring.list_calls

    def fail_next_pool_calls(self, code: str, times: int) -> bool:
        self.fakes.run.fail_next(code, times)
        return True

    def close(self) -> None:
        self.fakes.reset()


def make_gcp_harness(request) -> GcpHarness:
    request.getfixturevalue("pubsub_emulator")
    publisher, subscriber, ordered_publisher = request.getfixturevalue("pubsub_clients")
    fakes = request.getfixturevalue("gcp_fakes")
    fakes.reset()
    return GcpHarness(publisher=publisher, ordered_publisher=ordered_publisher, subscriber=subscriber, fakes=fakes)
