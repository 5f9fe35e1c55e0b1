"""Provisioning is part of a class's lifecycle: creating a class, or changing what of it lives in the
cloud, provisions its resources as an audited action; ingestion before they exist is a 503 with
Retry-After saying so, never a 502. Against the embedded local provider."""

import pytest
from rest_framework.test import APIClient

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory, class_payload
from workloads.models import Action, ActionKind, AuditEvent
from workloads.providers import get_providers
from workloads.providers.specs import queue_spec
from workloads.services.actions import action_run
from workloads.services.tokens import api_token_issue

pytestmark = pytest.mark.django_db
EVENT = {"tenant_id": "acme", "document_id": "doc-1", "revision": 1}


@pytest.fixture
def admin_api(admin_user, client_as):
    return client_as(admin_user)


@pytest.fixture
def producer(make_user):
    user = make_user("producer-bot", Role.VIEWER)
    _token, raw = api_token_issue(actor=None, user=user, name="producer", scopes=["ingest:*"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _ingest(producer, slug="doc-jobs"):
    return producer.post(f"/api/v1/classes/{slug}/events", EVENT, format="json")


def test_a_new_class_is_provisioned_by_an_action_and_then_ingests(admin_api, admin_user, producer):
    created = admin_api.post("/api/v1/classes/", class_payload(), format="json")
    assert created.status_code == 201, created.json()
    action_id = created.json()["provisioning_action"]
    action = Action.objects.get(pk=action_id)
    assert action.kind == ActionKind.ENSURE_RESOURCES and action.requested_by == admin_user
    assert AuditEvent.objects.filter(action="action.ensure_resources.request", workload_class_slug="doc-jobs").exists()

    # Before a worker ran it: 503 saying so, with Retry-After; nothing was queued.
    waiting = _ingest(producer)
    assert waiting.status_code == 503
    assert waiting["Retry-After"] == "30"
    assert waiting.json()["type"] == "resources_not_ready"
    assert f"being provisioned (action {action_id}" in waiting.json()["detail"]

    finished = action_run(action_id=action_id, sleep=lambda s: None)
    assert finished.state == "succeeded"
    assert finished.steps.get().result["created"]  # topic, subscriptions
    assert AuditEvent.objects.filter(action="workload_class.provision", workload_class_slug="doc-jobs").exists()
    accepted = _ingest(producer)
    assert accepted.status_code == 202, accepted.json()
    # The key given back by the 503 is free: the retry was accepted, not a duplicate.
    assert accepted.json()["status"] == "accepted"


def test_a_class_never_provisioned_answers_503_naming_what_to_do(producer):
    WorkloadClassFactory(slug="doc-jobs")
    response = _ingest(producer)
    assert response.status_code == 503 and response["Retry-After"]
    assert "An admin provisions them (POST /api/v1/classes/doc-jobs/provision/" in response.json()["detail"]
    assert response.json()["provisioning_action"] is None


def test_changing_a_cloud_setting_provisions_and_other_settings_do_not(admin_api):
    workload_class = WorkloadClassFactory(slug="doc-jobs")
    get_providers().queue.ensure_resources(queue_spec(workload_class))

    described = admin_api.patch("/api/v1/classes/doc-jobs/", {"description": "new words"}, format="json")
    assert described.json()["provisioning_action"] is None
    retried = admin_api.patch("/api/v1/classes/doc-jobs/", {"max_delivery_attempts": 7}, format="json")
    action_id = retried.json()["provisioning_action"]
    assert action_id and Action.objects.get(pk=action_id).reason == "cloud settings changed"
    assert action_run(action_id=action_id, sleep=lambda s: None).state == "succeeded"
    state = get_providers().queue.ensure_resources(
        queue_spec(workload_class.__class__.objects.get(pk=workload_class.pk))
    )
    assert not state.drift  # the subscription now has 7 delivery attempts


def test_an_admin_provisions_again_on_demand(admin_api, client_as, operator):
    WorkloadClassFactory(slug="doc-jobs")
    response = admin_api.post("/api/v1/classes/doc-jobs/provision/")
    assert response.status_code == 202 and response.json()["kind"] == "ensure_resources"
    assert client_as(operator).post("/api/v1/classes/doc-jobs/provision/").status_code == 403
    assert admin_api.post("/api/v1/classes/nope/provision/").status_code == 404


def test_the_admin_provisions_a_class_it_creates(admin_user):
    from django.test import Client

    from tests.api.test_audit import _admin_class_form
    from workloads.models import WorkloadClass

    browser = Client()
    browser.force_login(admin_user)
    template = WorkloadClass(slug="from-admin", name="From admin", owner_team="ops")
    response = browser.post("/admin/workloads/workloadclass/add/", _admin_class_form(template, slug="from-admin"))
    assert response.status_code == 302
    action = Action.objects.get(kind=ActionKind.ENSURE_RESOURCES, workload_class__slug="from-admin")
    assert action.requested_by == admin_user and action.reason == "class created"
