"""The observed runtimes' own Cloud Monitoring metrics, read through the real MetricServiceClient
from the in-process Monitoring fake: every query names a metric type, resource type and labels
Google publishes (google_descriptors.json), one ListTimeSeries per metric type and resource type
for all classes, and each runtime's figures land on the class that names its resource."""

from datetime import UTC, datetime, timedelta

import pytest
from google.api import distribution_pb2

from tests.contract.fakes.monitoring import METRICS, RESOURCES
from workloads.providers.base import LATENCY_BUCKET_BOUNDS, MetricTarget, Outcomes, RuntimeMetric
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.monitoring import CloudMonitoringMetrics
from workloads.providers.gcp.runtime_metrics import RUNTIME_QUERIES
from workloads.runtimes import PROFILES, Source
from workloads.selectors.runtimes import UNREAD_METRIC_TYPES

PROJECT = "demo-proj"
FAST = Backoff(initial=0.01, maximum=0.05, deadline=5.0)
END = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = END - timedelta(minutes=10)


def target(slug, runtime, resource):
    return MetricTarget(slug, "", "", "", runtime=runtime, runtime_resource=resource)


def at(minutes_before_end):
    return (END - timedelta(minutes=minutes_before_end, seconds=30)).timestamp()


@pytest.fixture
def metrics(gcp_fakes, fake_monitoring):
    return CloudMonitoringMetrics(gcp_fakes.monitoring_client, project=PROJECT, backoff=FAST)


@pytest.mark.parametrize("query", RUNTIME_QUERIES, ids=lambda q: f"{q.runtime}-{q.metric.value}")
def test_every_runtime_query_names_a_published_metric_resource_and_labels(query):
    descriptor = METRICS[query.metric_type]
    assert query.resource_type in descriptor["resources"]
    for field in filter(None, (query.label, query.outcome_label, query.namespace_label)):
        scope, _, label = field.split(".", 2)
        assert label in (RESOURCES[query.resource_type] if scope == "resource" else descriptor["labels"]), field


def test_runtimes_list_exactly_the_metric_types_that_are_read():
    listed = {
        (profile.runtime.value, o.metric_type, o.resource_type)
        for profile in PROFILES.values()
        for o in profile.observations
        if o.source == Source.RUNTIME_METRICS and o.metric_type not in UNREAD_METRIC_TYPES
    }
    read = {(q.runtime, q.metric_type, q.resource_type) for q in RUNTIME_QUERIES}
    assert listed == read


def _ms_latency(counts):
    bounds = [100.0, 1000.0, 10000.0]  # ms, Cloud Run's own buckets differ from ours
    return distribution_pb2.Distribution(
        count=sum(counts),
        mean=800.0,
        bucket_options={"explicit_buckets": {"bounds": bounds}},
        bucket_counts=counts,
    )


def test_each_runtime_figure_lands_on_its_class_with_one_call_per_metric_type(metrics, gcp_fakes):
    fake = gcp_fakes.monitoring
    revision = {"project_id": PROJECT, "location": "europe-west1", "configuration_name": "c", "revision_name": "r1"}
    for service, code, count in (("billing-push", "2xx", 7), ("billing-push", "5xx", 2), ("stranger", "2xx", 50)):
        fake.seed(
            "run.googleapis.com/request_count",
            resource_type="cloud_run_revision",
            resource_labels={**revision, "service_name": service},
            metric_labels={"response_code_class": code, "response_code": "200" if code == "2xx" else "503"},
            points=[(at(2), count)],
        )
    fake.seed(
        "run.googleapis.com/request_latencies",
        resource_type="cloud_run_revision",
        resource_labels={**revision, "service_name": "billing-push"},
        metric_labels={"response_code_class": "2xx"},
        points=[(at(2), _ms_latency([0, 3, 1, 0]))],
    )
    fake.seed(
        "run.googleapis.com/container/billable_instance_time",
        resource_type="cloud_run_revision",
        resource_labels={**revision, "service_name": "billing-push"},
        points=[(at(2), 42.5)],
    )
    fake.seed(
        "run.googleapis.com/container/billable_instance_time",
        resource_type="cloud_run_job",
        resource_labels={"project_id": PROJECT, "location": "europe-west1", "job_name": "nightly-export"},
        points=[(at(2), 60.0)],
    )
    for result, count in (("succeeded", 3), ("failed", 1)):
        fake.seed(
            "run.googleapis.com/job/completed_execution_count",
            resource_type="cloud_run_job",
            resource_labels={"project_id": PROJECT, "location": "europe-west1", "job_name": "nightly-export"},
            metric_labels={"result": result},
            points=[(at(2), count)],
        )
    function = {"project_id": PROJECT, "region": "europe-west1", "function_name": "thumbnails"}
    for status, count in (("ok", 10), ("error", 1), ("timeout", 1)):
        fake.seed(
            "cloudfunctions.googleapis.com/function/execution_count",
            resource_type="cloud_function",
            resource_labels=function,
            metric_labels={"status": status, "trigger_type": "google.pubsub.topic.publish"},
            points=[(at(2), count)],
        )
    for state, count in (("active", 2), ("idle", 1)):
        fake.seed(
            "cloudfunctions.googleapis.com/function/instance_count",
            resource_type="cloud_function",
            resource_labels=function,
            metric_labels={"state": state},
            points=[(at(2), count)],
        )
    for name, seconds in (("legacy-mig-x1z2", 60.0), ("legacy-mig-q9w8", 30.0), ("legacy-migration-1", 60.0)):
        fake.seed(
            "compute.googleapis.com/instance/uptime",
            resource_type="gce_instance",
            resource_labels={"project_id": PROJECT, "instance_id": name, "zone": "europe-west1-b"},
            metric_labels={"instance_name": name},
            points=[(at(2), seconds)],
        )
    pod = {"project_id": PROJECT, "location": "europe-west1", "cluster_name": "c1", "container_name": "app"}
    fake.seed(
        "kubernetes.io/container/cpu/core_usage_time",
        resource_type="k8s_container",
        resource_labels={**pod, "namespace_name": "docs", "pod_name": "renderer-7d9f-abcde"},
        points=[(at(3), 100.0), (at(2), 130.0)],  # cumulative core-seconds: 30 used in the later minute
    )
    targets = [
        target("billing", "cloud_run_service", f"projects/{PROJECT}/locations/europe-west1/services/billing-push"),
        target("export", "cloud_run_job", "nightly-export"),
        target("thumbs", "cloud_functions", "thumbnails"),
        target("vms", "compute_engine", "legacy-mig"),
        target("render", "gke", "docs/renderer"),
        target("pool", "worker_pool", ""),
    ]
    minute = END - timedelta(minutes=2)

    outcomes = metrics.runtime_series(RuntimeMetric.OUTCOMES, targets, start=START, end=END)
    assert fake.list_calls == 3  # request_count, completed_execution_count, execution_count
    assert outcomes["billing"][-1].value == Outcomes(executions=9, errors=2)
    assert outcomes["billing"][-1].end == minute
    assert outcomes["export"][-1].value == Outcomes(executions=4, errors=1)
    assert outcomes["thumbs"][-1].value == Outcomes(executions=12, errors=2)
    assert set(outcomes) == {"billing", "export", "thumbs"}

    latency = metrics.runtime_series(RuntimeMetric.LATENCY, targets, start=START, end=END)
    distribution = latency["billing"][-1].value
    assert distribution.count == 4 and distribution.sum == pytest.approx(3.2)  # 4 x 800 ms, in seconds
    assert len(distribution.bucket_counts) == len(LATENCY_BUCKET_BOUNDS) + 1

    before = fake.list_calls
    time = metrics.runtime_series(RuntimeMetric.INSTANCE_TIME, targets, start=START, end=END)
    assert fake.list_calls - before == 5  # two resource types of billable time, functions, GKE, VMs
    assert time["billing"][-1].value == 42.5
    assert time["export"][-1].value == 60.0
    assert time["thumbs"][-1].value == 3 * 60  # 3 instances over a 60 s step
    assert time["vms"][-1].value == 90.0  # the group's two instances, not legacy-migration-1
    assert time["render"][-1].value == pytest.approx(30.0)
    assert "pool" not in time


def test_no_observed_class_costs_no_call(metrics, gcp_fakes):
    result = metrics.runtime_series(RuntimeMetric.OUTCOMES, [target("pool", "worker_pool", "")], start=START, end=END)
    assert result == {} and gcp_fakes.monitoring.list_calls == 0


def test_200_observed_classes_cost_the_same_calls_as_one(metrics, gcp_fakes):
    fake = gcp_fakes.monitoring
    revision = {"project_id": PROJECT, "location": "europe-west1", "configuration_name": "c", "revision_name": "r1"}
    fake.seed(
        "run.googleapis.com/container/billable_instance_time",
        resource_type="cloud_run_revision",
        resource_labels={**revision, "service_name": "svc-117"},
        points=[(at(2), 12.0)],
    )
    many = [target(f"cls-{i:03d}", "cloud_run_service", f"svc-{i:03d}") for i in range(200)]
    many += [target(f"vm-{i:03d}", "compute_engine", f"group-{i:03d}") for i in range(200)]
    result = metrics.runtime_series(RuntimeMetric.INSTANCE_TIME, many, start=START, end=END)
    # One call per metric type and resource type (billable time on revisions, VM uptime), and the
    # filters stay within Monitoring's length limit (the services' falls back to a prefix regex).
    assert fake.list_calls == 2
    assert all(len(request.filter) <= 2048 for request in fake.list_requests)
    assert result == {"cls-117": [result["cls-117"][0]]} and result["cls-117"][0].value == 12.0


def test_runtime_metrics_are_read_through_each_environments_scoping_project(metrics, gcp_fakes):
    """As the poll's own metrics (tests/environments/test_environment_polling.py): one call per
    metric type per scoping project, each filtered to that scope's resources; a target without one
    is read through the provider's project."""
    fake = gcp_fakes.monitoring
    for project, service, count in (("prod-one", "billing-push", 7), ("stage-one", "staged-push", 3)):
        fake.seed(
            "run.googleapis.com/request_count",
            resource_type="cloud_run_revision",
            resource_labels={
                "project_id": project,
                "location": "europe-west1",
                "configuration_name": "c",
                "revision_name": "r1",
                "service_name": service,
            },
            metric_labels={"response_code_class": "2xx", "response_code": "200"},
            points=[(at(2), count)],
        )

    def run(slug, project, service, scope):
        resource = f"projects/{project}/locations/europe-west1/services/{service}"
        return MetricTarget(
            slug, "", "", "", runtime="cloud_run_service", runtime_resource=resource, scope_project=scope
        )

    targets = [
        run("prod-billing", "prod-one", "billing-push", "prod-scope"),
        run("prod-other", "prod-two", "other-push", "prod-scope"),
        run("staged", "stage-one", "staged-push", "stage-scope"),
    ]
    outcomes = metrics.runtime_series(RuntimeMetric.OUTCOMES, targets, start=START, end=END)
    assert fake.list_calls == 2  # request_count, once per scoping project
    filters = {request.name: request.filter for request in fake.list_requests}
    assert set(filters) == {"projects/prod-scope", "projects/stage-scope"}
    assert "staged-push" in filters["projects/stage-scope"] and "billing-push" not in filters["projects/stage-scope"]
    assert "billing-push" in filters["projects/prod-scope"] and "other-push" in filters["projects/prod-scope"]
    assert "staged-push" not in filters["projects/prod-scope"]
    assert outcomes["prod-billing"][-1].value == Outcomes(executions=7, errors=0)
    assert outcomes["staged"][-1].value == Outcomes(executions=3, errors=0)

    fake.list_requests.clear()
    metrics.runtime_series(RuntimeMetric.OUTCOMES, [*targets, run("own", PROJECT, "x", "")], start=START, end=END)
    assert sorted(request.name for request in fake.list_requests) == [
        f"projects/{PROJECT}",
        "projects/prod-scope",
        "projects/stage-scope",
    ]
