"""build_gcp_providers(): clients from settings, PUBSUB_EMULATOR_HOST honoured, endpoint overrides
for Cloud Run and Monitoring, and one set of clients per process through get_providers()."""

from datetime import UTC, datetime, timedelta

import pytest

from workloads.providers import get_providers, set_providers
from workloads.providers.base import MetricKind, MetricTarget, OutboundMessage, PoolSpec, QueueSpec

pytestmark = pytest.mark.emulator


@pytest.fixture
def gcp_settings(settings, pubsub_emulator, gcp_fakes, fake_cloud_run, fake_monitoring):
    settings.CONTROLPLANE_PROVIDER = "gcp"
    settings.GOOGLE_CLOUD_PROJECT = "built-proj"
    settings.CLOUD_RUN_ENDPOINT = gcp_fakes.address
    settings.CLOUD_MONITORING_ENDPOINT = gcp_fakes.address
    set_providers(None)
    yield settings
    set_providers(None)


def test_get_providers_builds_the_gcp_adapters_once_and_they_reach_every_backend(
    gcp_settings, fake_cloud_run, fake_monitoring
):
    providers = get_providers()
    assert providers.name == "gcp" and get_providers() is providers

    spec = QueueSpec(
        slug="built",
        topic="projects/built-proj/topics/built",
        subscription="projects/built-proj/subscriptions/built-worker",
        dead_letter_topic="projects/built-proj/topics/built-dead-letter",
        dead_letter_subscription="projects/built-proj/subscriptions/built-dead-letter",
    )
    providers.queue.ensure_resources(spec)
    [message_id] = providers.queue.publish(spec, [OutboundMessage(b"through the emulator")])
    [received] = providers.queue.pull(spec, max_messages=1, timeout=5)
    assert received.message_id == message_id
    providers.queue.ack(spec, [received.ack_id])

    pool = "projects/built-proj/locations/us-central1/workerPools/built"
    fake_cloud_run.add_pool(pool, instance_count=1)
    assert providers.pools.set_instances(PoolSpec(slug="built", worker_pool=pool), 2, reason="test").instance_count == 2

    end = datetime.now(UTC).replace(second=0, microsecond=0)
    target = MetricTarget(
        slug="built",
        subscription=spec.subscription,
        dead_letter_subscription=spec.dead_letter_subscription,
        worker_pool=pool,
    )
    providers.metrics.series(MetricKind.OLDEST_UNACKED_AGE, [target], start=end - timedelta(minutes=5), end=end)
    [request] = fake_monitoring.list_requests
    assert request.name == "projects/built-proj"
