"""The Cloud Monitoring adapter against Google's published descriptors (one fixture,
tests/contract/fakes/google_descriptors.json, which the Monitoring fake answers from too): every
metric type, resource type and label the adapter reads or writes is one Google publishes, so a
misspelt name fails here instead of reading zeros in production. And the worker's `instance_id`
label is bounded."""

from datetime import UTC, datetime, timedelta

import pytest
from google.api import metric_pb2

from tests.contract.fakes.monitoring import METRICS, RESOURCES
from workloads.providers.base import (
    LATENCY_BUCKET_BOUNDS,
    Distribution,
    MetricKind,
    MetricTarget,
    ProviderError,
    WorkerReport,
)
from workloads.providers.gcp import monitoring
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.monitoring import QUERIES, CloudMonitoringMetrics, Query, instance_label

PROJECT = "demo-proj"
END = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FAST = Backoff(initial=0.01, maximum=0.05, deadline=5.0)


@pytest.fixture
def metrics(gcp_fakes, fake_monitoring):
    return CloudMonitoringMetrics(gcp_fakes.monitoring_client, project=PROJECT, backoff=FAST)


def _report(instance: str, *, end=END) -> WorkerReport:
    counts = [0] * (len(LATENCY_BUCKET_BOUNDS) + 1)
    counts[10] = 2
    return WorkerReport(
        slug="render",
        worker_pool=f"projects/{PROJECT}/locations/us-central1/workerPools/render",
        interval_start=end - timedelta(seconds=60),
        interval_end=end,
        completed=2,
        failed=1,
        records=4,
        tokens=10,
        latency=Distribution(count=2, sum=0.1, bucket_counts=tuple(counts)),
        instance_id=instance,
    )


@pytest.mark.parametrize("kind", list(QUERIES), ids=lambda kind: kind.value)
def test_every_query_names_a_published_metric_resource_and_label(kind):
    query = QUERIES[kind]
    descriptor = METRICS[query.metric_type]
    assert query.resource_type in descriptor["resources"]
    scope, _, label = query.label.split(".", 2)
    assert label in (RESOURCES[query.resource_type] if scope == "resource" else descriptor["labels"])


def test_every_metric_kind_is_read_somewhere():
    assert set(QUERIES) == set(MetricKind)


def test_every_written_series_matches_its_published_descriptor(metrics):
    series = metrics._as_series(_report("worker-7f9c-1234"))
    assert {s.metric.type for s in series} == {t for t in METRICS if t.startswith(monitoring.CUSTOM_PREFIX)}
    for item in series:
        descriptor = METRICS[item.metric.type]
        kind = metric_pb2.MetricDescriptor.MetricKind.Name(item.metric_kind)
        value_type = metric_pb2.MetricDescriptor.ValueType.Name(item.value_type)
        assert (kind, value_type, item.unit) == (
            descriptor["kind"],
            descriptor["value_type"],
            descriptor["unit"],
        )
        assert set(item.metric.labels) == set(descriptor["labels"])
        assert item.resource.type in descriptor["resources"]
        assert set(item.resource.labels) == set(RESOURCES[item.resource.type])


def test_a_misspelt_label_or_resource_type_fails_against_the_fake(metrics, monkeypatch):
    good = QUERIES[MetricKind.UNDELIVERED_MESSAGES]
    target = MetricTarget("render", f"projects/{PROJECT}/subscriptions/render-worker", "", "")
    window = dict(start=END - timedelta(minutes=10), end=END)
    for wrong in (
        Query(
            good.metric_type, good.resource_type, "resource.labels.subscription", good.key, good.aligner, good.reducer
        ),
        Query(good.metric_type, "pubsub_subscriptions", good.label, good.key, good.aligner, good.reducer),
        Query(good.metric_type + "s", good.resource_type, good.label, good.key, good.aligner, good.reducer),
    ):
        monkeypatch.setitem(QUERIES, MetricKind.UNDELIVERED_MESSAGES, wrong)
        with pytest.raises(ProviderError) as caught:
            metrics.series(MetricKind.UNDELIVERED_MESSAGES, [target], **window)
        assert caught.value.code == "INVALID_ARGUMENT", wrong


def test_the_instance_label_is_bounded_and_stable():
    labels = {instance_label(f"localhost-{pid}", slots=64) for pid in range(10_000)}
    assert len(labels) == 64  # ten thousand restarts, 64 series per metric and class at most
    assert instance_label("host-a-17", slots=64) == instance_label("host-a-17", slots=64)


def test_workers_that_share_a_slot_both_count(metrics, fake_monitoring):
    slots = 4
    metrics = CloudMonitoringMetrics(metrics._client, project=PROJECT, backoff=FAST, instance_slots=slots)
    first = "host-a-1"
    second = next(
        f"host-b-{n}"
        for n in range(100)
        if instance_label(f"host-b-{n}", slots=slots) == instance_label(first, slots=slots)
    )
    metrics.write_worker_report(_report(first, end=END - timedelta(seconds=50)))
    metrics.write_worker_report(_report(second, end=END - timedelta(seconds=20)))
    target = MetricTarget("render", "", "", "")
    completed = metrics.series(MetricKind.COMPLETED, [target], start=END - timedelta(minutes=5), end=END)
    assert sum(point.value for point in completed["render"]) == 4
    written = {s.metric.labels["instance_id"] for r in fake_monitoring.create_requests for s in r.time_series}
    assert written == {instance_label(first, slots=slots)}
