"""The Google Cloud adapters: Pub/Sub (Queue), Cloud Run Admin (WorkerPools), Cloud Monitoring (Metrics).

`build_gcp_providers()` creates the clients once (`get_providers()` caches the result per process).
Pub/Sub honours PUBSUB_EMULATOR_HOST by itself; CLOUD_RUN_ENDPOINT and CLOUD_MONITORING_ENDPOINT
point the other two at another address over a plain (insecure) channel, for tests and local fakes.
"""

from __future__ import annotations

import grpc
from django.conf import settings
from google.cloud import monitoring_v3, pubsub_v1, run_v2
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport
from google.cloud.run_v2.services.worker_pools.transports import WorkerPoolsGrpcTransport

from workloads.providers.base import Providers
from workloads.providers.gcp.cloudrun import CloudRunWorkerPools
from workloads.providers.gcp.monitoring import CloudMonitoringMetrics
from workloads.providers.gcp.pubsub import PubSubQueue


def run_client(endpoint: str | None = None) -> run_v2.WorkerPoolsClient:
    if endpoint:
        return run_v2.WorkerPoolsClient(transport=WorkerPoolsGrpcTransport(channel=grpc.insecure_channel(endpoint)))
    return run_v2.WorkerPoolsClient()


def monitoring_client(endpoint: str | None = None) -> monitoring_v3.MetricServiceClient:
    if endpoint:
        return monitoring_v3.MetricServiceClient(
            transport=MetricServiceGrpcTransport(channel=grpc.insecure_channel(endpoint))
        )
    return monitoring_v3.MetricServiceClient()


def pubsub_clients() -> tuple[pubsub_v1.PublisherClient, pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]:
    """A plain publisher, one with message ordering enabled (only for messages with an ordering
    key: see PubSubQueue), and a subscriber."""
    # The library holds a batch open for 10 ms by default; a replay publishes one message per step
    # and a single-event ingestion request waits for its publish, so 10 ms a message caps both.
    # 1 ms still batches concurrent requests and the messages of one batch request.
    publisher = pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.001))
    ordered_publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    return publisher, ordered_publisher, pubsub_v1.SubscriberClient()


def build_gcp_providers() -> Providers:
    publisher, ordered_publisher, subscriber = pubsub_clients()
    return Providers(
        queue=PubSubQueue(
            publisher=publisher,
            ordered_publisher=ordered_publisher,
            subscriber=subscriber,
            max_lease_extension_seconds=settings.PUBSUB_MAX_LEASE_EXTENSION_SECONDS,
        ),
        pools=CloudRunWorkerPools(run_client(settings.CLOUD_RUN_ENDPOINT)),
        metrics=CloudMonitoringMetrics(
            monitoring_client(settings.CLOUD_MONITORING_ENDPOINT),
            project=settings.GOOGLE_CLOUD_PROJECT,
            instance_slots=settings.WORKER_METRIC_INSTANCE_SLOTS,
        ),
        name="gcp",
    )
