"""A class's runtime through the API: registered with it, validated, observed (which figures come
from where), and never scaled or paused as a pool when it is only observed."""

import pytest
from django.utils import timezone

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory, class_payload
from workloads.services.scaling import scaling_controller_tick


@pytest.fixture
def admin_api(client_as, make_user):
    return client_as(make_user("rt-admin", Role.ADMIN))


def test_it_registers_a_class_on_an_observed_runtime(admin_api):
    body = class_payload(
        slug="legacy-fn", runtime="cloud_functions", runtime_resource="process-doc", slos=[], schedules=[]
    )
    response = admin_api.post("/api/v1/classes/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["runtime"] == "cloud_functions"
    assert admin_api.get("/api/v1/classes/legacy-fn/").json()["runtime_resource"] == "process-doc"


def test_it_defaults_to_a_worker_pool(admin_api):
    response = admin_api.post("/api/v1/classes/", class_payload(slos=[], schedules=[]), format="json")
    assert response.json()["runtime"] == "worker_pool"


def test_it_refuses_an_unknown_runtime_naming_the_valid_ones(admin_api):
    response = admin_api.post("/api/v1/classes/", class_payload(runtime="lambda", slos=[], schedules=[]), format="json")
    assert response.status_code == 400
    assert "celery" in str(response.json())


def test_it_needs_the_task_name_of_a_celery_class_and_one_class_per_task(admin_api):
    body = class_payload(slug="legacy-celery", runtime="celery", slos=[], schedules=[])
    response = admin_api.post("/api/v1/classes/", body, format="json")
    assert response.status_code == 400
    assert "runtime_resource" in response.json()["errors"]
    body["runtime_resource"] = "legacy.process"
    assert admin_api.post("/api/v1/classes/", body, format="json").status_code == 201
    second = class_payload(
        slug="legacy-celery-2", runtime="celery", runtime_resource="legacy.process", slos=[], schedules=[]
    )
    response = admin_api.post("/api/v1/classes/", second, format="json")
    assert response.status_code == 400
    assert "already runs the task" in str(response.json()["errors"]["runtime_resource"])


def test_it_lists_what_a_runtime_can_observe_with_googles_metric_types(client_as, viewer):
    WorkloadClassFactory(slug="legacy-run", runtime="cloud_run_service", runtime_resource="docs-svc")
    body = client_as(viewer).get("/api/v1/classes/legacy-run/observation/").json()
    assert body["managed"] is False
    figures = {f["figure"]: f for f in body["figures"]}
    queue_age = figures["queue_age"]["sources"][0]
    assert queue_age["metric_type"] == "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
    assert queue_age["resource_type"] == "pubsub_subscription"
    assert figures["queue_age"]["status"] == "no data"
    latency_types = {s["metric_type"] for s in figures["latency"]["sources"]}
    assert "run.googleapis.com/request_latencies" in latency_types
    assert figures["acks"]["status"] == "not read"


def test_it_shows_the_observation_to_viewers_only(client_as, outsider):
    WorkloadClassFactory(slug="legacy-run")
    assert client_as(outsider).get("/api/v1/classes/legacy-run/observation/").status_code == 403


def test_the_controller_never_scales_an_observed_runtime(db):
    WorkloadClassFactory(slug="legacy-gke", runtime="gke", runtime_resource="jobs/indexer")
    summary = scaling_controller_tick(now=timezone.now())
    assert summary.skipped["legacy-gke"] == "observed runtime: not scaled by the control plane"


def test_a_pause_of_an_observed_runtime_is_refused(client_as, operator):
    WorkloadClassFactory(slug="legacy-vm", runtime="compute_engine", runtime_resource="mig-docs")
    response = client_as(operator).post("/api/v1/classes/legacy-vm/pause", {"reason": "test"}, format="json")
    assert response.status_code == 409
    assert response.json()["type"] == "observed_runtime"
