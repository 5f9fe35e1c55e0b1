"""The telemetry poll reads observed runtimes' own Cloud Monitoring metrics, through the real
adapter and client library against the in-process Monitoring fake: one ListTimeSeries per Google
metric type for all observed classes, stored in the rollups (a re-poll replaces, never adds), and
the class page's "what we observe" marks the figures received (issue 20, item 1)."""

import time

from django.utils import timezone
from google.api import distribution_pb2

from tests.factories import WorkloadClassFactory
from workloads.models import MetricRollup, PollRun
from workloads.providers import set_providers
from workloads.providers.base import Providers
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.monitoring import CloudMonitoringMetrics
from workloads.runtimes import Figure
from workloads.selectors.rollups import POLLED_METRICS
from workloads.selectors.runtimes import class_observation
from workloads.selectors.telemetry import latest_poll_runs
from workloads.services.polling import metrics_poll

PROJECT = "runtime-proj"
REVISION = {"project_id": PROJECT, "location": "europe-west1", "configuration_name": "c", "revision_name": "r1"}


def seed_service(fake, service: str, moment: float):
    for code, count in (("2xx", 7), ("5xx", 2)):
        fake.seed(
            "run.googleapis.com/request_count",
            resource_type="cloud_run_revision",
            resource_labels={**REVISION, "service_name": service},
            metric_labels={"response_code_class": code},
            points=[(moment, count)],
        )
    fake.seed(
        "run.googleapis.com/request_latencies",
        resource_type="cloud_run_revision",
        resource_labels={**REVISION, "service_name": service},
        points=[
            (
                moment,
                distribution_pb2.Distribution(
                    count=4, mean=250.0, bucket_options={"explicit_buckets": {"bounds": [100.0, 1000.0]}},
                    bucket_counts=[0, 4, 0],
                ),
            )
        ],
    )  # fmt: skip
    fake.seed(
        "run.googleapis.com/container/billable_instance_time",
        resource_type="cloud_run_revision",
        resource_labels={**REVISION, "service_name": service},
        points=[(moment, 42.5)],
    )


def test_the_poll_reads_an_observed_services_own_metrics_into_its_rollups(db, gcp_fakes, settings):
    settings.GOOGLE_CLOUD_PROJECT = PROJECT
    service = WorkloadClassFactory(slug="billing", runtime="cloud_run_service", runtime_resource="billing-push")
    celery = WorkloadClassFactory(slug="legacy", runtime="celery", runtime_resource="legacy.task")
    WorkloadClassFactory(slug="pooled")
    gcp_fakes.reset()
    seed_service(gcp_fakes.monitoring, "billing-push", time.time() - 150)
    metrics = CloudMonitoringMetrics(
        gcp_fakes.monitoring_client, project=PROJECT, backoff=Backoff(initial=0.05, maximum=0.2, deadline=5)
    )
    set_providers(Providers(queue=None, pools=None, metrics=metrics, name="gcp"))
    try:
        now = timezone.now()
        metrics_poll(now=now)
        calls = gcp_fakes.monitoring.list_calls
        metrics_poll(now=now)  # the same window again: replaced, not added
    finally:
        set_providers(None)

    # The pool and subscription metrics as before, plus request_count, request_latencies and
    # billable_instance_time once each (Celery publishes no Monitoring metrics of its own).
    assert calls == len(POLLED_METRICS) + 3
    assert set(PollRun.objects.filter(metric__startswith="runtime_").values_list("metric", flat=True)) == {
        "runtime_outcomes",
        "runtime_latency",
        "runtime_instance_time",
    }
    assert PollRun.objects.filter(metric="runtime_outcomes").first().classes == 1  # the service only
    assert {"runtime_outcomes", "runtime_latency", "runtime_instance_time"} <= set(latest_poll_runs())
    row = MetricRollup.objects.get(workload_class=service, resolution="minute", executions__gt=0)
    assert (row.executions, row.execution_errors) == (9, 2)
    assert row.instance_seconds == 42.5 and row.instances == 42.5 / 60
    assert row.runtime_latency_count == 4 and abs(row.runtime_latency_sum - 1.0) < 1e-9
    assert row.completed == 0 and row.latency_count == 0  # the worker kit's figures stay apart
    hour = MetricRollup.objects.get(workload_class=service, resolution="hour", bucket_start__lte=row.bucket_start)
    assert (hour.executions, hour.execution_errors, hour.runtime_latency_count) == (9, 2, 4)

    figures = {r.figure: r for r in class_observation(service, now=timezone.now())}
    for figure in (Figure.EXECUTIONS, Figure.ERRORS, Figure.LATENCY, Figure.INSTANCE_TIME):
        assert figures[figure].status == "received", figure
        assert any(s.read for s in figures[figure].sources)
    assert {r.figure: r.status for r in class_observation(celery, now=timezone.now())}[Figure.EXECUTIONS] == "no data"
