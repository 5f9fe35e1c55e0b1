"""Polling by Monitoring scoping project, through the real Cloud Monitoring adapter and client
library against the in-process Monitoring fake: one ListTimeSeries per metric per scoping project,
whatever the number of projects and classes, each filtered to that scope's classes."""

import time

from django.utils import timezone

from tests.factories import CostRatesFactory, WorkloadClassFactory
from workloads.models import ClassTelemetry, Environment
from workloads.providers import set_providers
from workloads.providers.base import MetricKind, Providers
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.monitoring import CloudMonitoringMetrics
from workloads.services.polling import metrics_poll

BACKLOG = "pubsub.googleapis.com/subscription/num_undelivered_messages"


def _environment(slug: str, projects: list[str], scope: str) -> Environment:
    return Environment.objects.create(
        slug=slug, name=slug, projects=projects, regions=["us-central1"], monitoring_project=scope
    )


def _class_in(environment: Environment, project: str, slug: str, rates):
    names = {
        "topic": f"projects/{project}/topics/{slug}",
        "subscription": f"projects/{project}/subscriptions/{slug}-worker",
        "dead_letter_topic": f"projects/{project}/topics/{slug}-dead-letter",
        "dead_letter_subscription": f"projects/{project}/subscriptions/{slug}-dead-letter",
        "worker_pool": f"projects/{project}/locations/us-central1/workerPools/{slug}",
    }
    return WorkloadClassFactory(slug=slug, environment=environment, cost_rates=rates, **names)


def _poll(gcp_fakes) -> list:
    gcp_fakes.monitoring.list_requests.clear()
    metrics = CloudMonitoringMetrics(
        gcp_fakes.monitoring_client, project="control-proj", backoff=Backoff(initial=0.05, maximum=0.2, deadline=5)
    )
    set_providers(Providers(queue=None, pools=None, metrics=metrics, name="gcp"))
    try:
        metrics_poll(now=timezone.now())
    finally:
        set_providers(None)
    return list(gcp_fakes.monitoring.list_requests)


def _seed_backlog(gcp_fakes, project: str, workload_class, value: int) -> None:
    now = time.time()
    gcp_fakes.monitoring.seed(
        BACKLOG,
        resource_type="pubsub_subscription",
        resource_labels={"project_id": project, "subscription_id": workload_class.subscription.rsplit("/", 1)[1]},
        points=[(now - minutes * 60, value) for minutes in range(5)],
    )


def test_one_call_per_metric_per_scoping_project_whatever_the_projects(db, gcp_fakes):
    rates = CostRatesFactory()
    gcp_fakes.reset()
    prod = _environment("prod", ["prod-one", "prod-two", "prod-three"], "prod-scope")
    one = _class_in(prod, "prod-one", "alpha-001", rates)
    single_project = _poll(gcp_fakes)
    assert len(single_project) == len(MetricKind)

    # Thirty classes over three projects of one environment: the same number of calls.
    spread = [
        _class_in(prod, f"prod-{p}", f"fleet-{p}-{i:02d}", rates) for p in ("one", "two", "three") for i in range(10)
    ]
    many_projects = _poll(gcp_fakes)
    assert len(many_projects) == len(single_project)
    assert {r.name for r in many_projects} == {"projects/prod-scope"}

    # A second environment with its own scoping project: one more call per metric, filtered to its classes.
    staging = _environment("staging", ["stage-one"], "stage-scope")
    staged = _class_in(staging, "stage-one", "staged-001", rates)
    _seed_backlog(gcp_fakes, "prod-two", spread[12], 42)
    _seed_backlog(gcp_fakes, "stage-one", staged, 7)
    two_scopes = _poll(gcp_fakes)
    assert len(two_scopes) == 2 * len(MetricKind)
    backlog_requests = {r.name: r.filter for r in two_scopes if BACKLOG in r.filter}
    assert set(backlog_requests) == {"projects/prod-scope", "projects/stage-scope"}
    assert "staged-001" in backlog_requests["projects/stage-scope"]
    assert "staged-001" not in backlog_requests["projects/prod-scope"]
    assert "alpha-001" not in backlog_requests["projects/stage-scope"]
    assert ClassTelemetry.objects.get(workload_class=spread[12]).backlog == 42
    assert ClassTelemetry.objects.get(workload_class=staged).backlog == 7
    quiet = ClassTelemetry.objects.filter(workload_class=one).first()
    assert quiet is None or not quiet.backlog
