"""The telemetry poll through the real Cloud Monitoring adapter and client library, against the
in-process Monitoring fake: 200 classes cost exactly one ListTimeSeries per metric, and a seeded
backlog lands in the right class's rollup."""

import time
from datetime import UTC, datetime

from django.utils import timezone

from tests.factories import CostRatesFactory, WorkloadClassFactory
from workloads.models import ClassTelemetry, MetricRollup
from workloads.providers import set_providers
from workloads.providers.base import MetricKind, Providers
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.monitoring import CloudMonitoringMetrics
from workloads.services.polling import metrics_poll

BACKLOG = "pubsub.googleapis.com/subscription/num_undelivered_messages"


def test_polling_200_classes_costs_one_call_per_metric_at_the_fake_server(db, gcp_fakes, settings):
    settings.GOOGLE_CLOUD_PROJECT = "fleet-proj"
    rates = CostRatesFactory()
    classes = [WorkloadClassFactory(slug=f"fleet-{i:03d}", cost_rates=rates) for i in range(200)]
    busy = classes[17]
    now = time.time()
    gcp_fakes.reset()
    gcp_fakes.monitoring.seed(
        BACKLOG,
        resource_type="pubsub_subscription",
        resource_labels={"project_id": "fleet-proj", "subscription_id": busy.subscription.rsplit("/", 1)[1]},
        points=[(now - minutes * 60, 42) for minutes in range(5)],
    )
    metrics = CloudMonitoringMetrics(
        gcp_fakes.monitoring_client, project="fleet-proj", backoff=Backoff(initial=0.05, maximum=0.2, deadline=5)
    )
    set_providers(Providers(queue=None, pools=None, metrics=metrics, name="gcp"))
    try:
        metrics_poll(now=timezone.now())
    finally:
        set_providers(None)

    assert gcp_fakes.monitoring.list_calls == len(MetricKind)
    latest = MetricRollup.objects.filter(workload_class=busy, backlog__isnull=False).order_by("-bucket_start").first()
    assert latest is not None and latest.backlog == 42
    assert ClassTelemetry.objects.get(workload_class=busy).backlog == 42
    assert not MetricRollup.objects.filter(workload_class=classes[0], backlog__gt=0).exists()
    assert latest.bucket_start <= datetime.now(UTC)
