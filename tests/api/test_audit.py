"""Every change through the API and the admin writes an AuditEvent with the diff."""

import pytest
from django.test import Client

from tests.factories import WorkloadClassFactory, class_payload
from workloads.models import AuditEvent, CostRates, WorkloadClass


def test_api_create_update_delete_are_audited_with_the_diff(admin_user, client_as):
    client = client_as(admin_user)
    response = client.post("/api/v1/classes/", class_payload(), format="json", HTTP_X_REQUEST_ID="req-123")
    assert response.status_code == 201
    assert response["X-Request-ID"] == "req-123"
    created = AuditEvent.objects.get(action="workload_class.create")
    assert created.actor == admin_user and created.via == "api" and created.request_id == "req-123"
    assert created.source_ip == "127.0.0.1"
    assert created.changes["max_instances"] == [None, 5]
    assert created.changes["slos"][0] is None and len(created.changes["slos"][1]) == 2

    client.patch("/api/v1/classes/doc-jobs/", {"max_instances": 8, "description": "now bigger"}, format="json")
    updated = AuditEvent.objects.get(action="workload_class.update")
    assert updated.changes == {"description": ["", "now bigger"], "max_instances": [5, 8]}
    assert updated.workload_class_slug == "doc-jobs"

    client.delete("/api/v1/classes/doc-jobs/")
    deleted = AuditEvent.objects.get(action="workload_class.delete")
    assert deleted.changes["slug"] == ["doc-jobs", None]
    assert deleted.target_repr == "doc-jobs"


def test_an_update_that_changes_nothing_writes_no_event(admin_user, client_as):
    client = client_as(admin_user)
    body = client.post("/api/v1/classes/", class_payload(), format="json").json()
    client.put("/api/v1/classes/doc-jobs/", body, format="json")
    assert not AuditEvent.objects.filter(action="workload_class.update").exists()


def test_a_refused_change_writes_nothing(admin_user, client_as):
    client = client_as(admin_user)
    client.post("/api/v1/classes/", class_payload(max_delivery_attempts=3), format="json")
    assert not AuditEvent.objects.filter(action__startswith="workload_class").exists()


def test_token_requests_name_the_token(admin_user, token_client):
    client, token = token_client(admin_user)
    client.post("/api/v1/cost-rates/", {"name": "rates", "vcpu_second": "0.1"}, format="json")
    event = AuditEvent.objects.get(action="cost_rates.create")
    assert event.token == token
    assert event.actor_label == f"{admin_user.username} (token test-token)"


def test_the_audit_log_is_browsable_and_filterable_through_the_api(admin_user, client_as):
    client = client_as(admin_user)
    client.post("/api/v1/classes/", class_payload(), format="json")
    client.post("/api/v1/cost-rates/", {"name": "rates"}, format="json")
    events = client.get("/api/v1/audit-events/?workload_class=doc-jobs").json()["results"]
    # Newest first: the class, then the request to provision its resources (same transaction).
    assert [e["action"] for e in events] == ["action.ensure_resources.request", "workload_class.create"]
    events = client.get("/api/v1/audit-events/?action=cost_rates").json()["results"]
    assert [e["action"] for e in events] == ["cost_rates.create"]


@pytest.fixture
def admin_browser(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def _admin_class_form(workload_class, **overrides):
    data = {
        "name": workload_class.name,
        "owner_team": workload_class.owner_team,
        "description": "",
        "tier": workload_class.tier,
        "runtime": workload_class.runtime,
        "route_percent": workload_class.route_percent,
        "timeout_tier": workload_class.timeout_tier,
        "timeout_seconds": "",
        "max_concurrency": 4,
        "max_delivery_attempts": 5,
        "min_backoff_seconds": 10,
        "max_backoff_seconds": 600,
        "backoff_jitter": "on",
        "replay_limit": 3,
        "payload_schema": '{"type": "object", "required": ["tenant_id", '
        '"document_id", "revision"], "properties": {"tenant_id": {"type": "string"}, "document_id": {"type": '
        '"string"}, "revision": {"type": "integer"}}}',
        "schema_version": 1,
        "idempotency_key_template": "{tenant_id}:{document_id}:{revision}",
        "dedup_ttl_seconds": 86400,
        "ordering_key_template": "",
        "min_instances": 0,
        "max_instances": 10,
        "throughput_per_instance": 1.0,
        "drain_target_seconds": 300,
        "vcpu_per_instance": "1",
        "memory_gib_per_instance": "0.5",
        "cost_rates": "",
        "topic": "",
        "subscription": "",
        "dead_letter_topic": "",
        "dead_letter_subscription": "",
        "completion_topic": "",
        "worker_pool": "",
        "runtime_resource": "",
        "message_retention_seconds": 604800,
        "slos-TOTAL_FORMS": 0,
        "slos-INITIAL_FORMS": 0,
        "schedules-TOTAL_FORMS": 0,
        "schedules-INITIAL_FORMS": 0,
    }
    data.update(overrides)
    return data


def test_admin_create_update_delete_are_audited_with_the_diff(admin_browser):
    template = WorkloadClass(slug="from-admin", name="From admin", owner_team="ops")
    response = admin_browser.post("/admin/workloads/workloadclass/add/", _admin_class_form(template, slug="from-admin"))
    assert response.status_code == 302, (
        response.context["adminform"].form.errors if response.context else response.status_code
    )
    created = AuditEvent.objects.get(action="workload_class.create")
    assert created.via == "admin" and created.changes["slug"] == [None, "from-admin"]

    workload_class = WorkloadClass.objects.get(slug="from-admin")
    response = admin_browser.post(
        f"/admin/workloads/workloadclass/{workload_class.pk}/change/",
        _admin_class_form(workload_class, max_instances=20),
    )
    assert response.status_code == 302
    updated = AuditEvent.objects.get(action="workload_class.update")
    assert updated.changes == {"max_instances": [10, 20]}

    response = admin_browser.post(f"/admin/workloads/workloadclass/{workload_class.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    deleted = AuditEvent.objects.get(action="workload_class.delete")
    assert deleted.via == "admin" and deleted.changes["max_instances"] == [20, None]
    assert not WorkloadClass.objects.exists()


def test_the_admin_applies_the_same_validation(admin_browser):
    template = WorkloadClass(slug="bad-one", name="Bad", owner_team="ops")
    response = admin_browser.post(
        "/admin/workloads/workloadclass/add/", _admin_class_form(template, slug="bad-one", max_delivery_attempts=101)
    )
    assert response.status_code == 200  # the form comes back with the error
    assert b"less than or equal to 100" in response.content
    assert not WorkloadClass.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="workload_class").exists()


def test_admin_cost_rates_changes_are_audited(admin_browser):
    response = admin_browser.post(
        "/admin/workloads/costrates/add/",
        {
            "name": "admin-rates",
            "description": "",
            "currency": "USD",
            "vcpu_second": "0.1",
            "gib_second": "0",
            "per_record": "0",
            "per_1k_tokens": "0",
        },
    )
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="cost_rates.create").changes["vcpu_second"] == [None, "0.1"]
    assert CostRates.objects.filter(name="admin-rates").exists()


@pytest.mark.parametrize("role_fixture", ["viewer", "operator"])
def test_only_admins_get_into_the_admin(request, db, role_fixture):
    client = Client()
    client.force_login(request.getfixturevalue(role_fixture))
    response = client.get("/admin/workloads/workloadclass/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_admin_audit_log_is_read_only(admin_browser):
    WorkloadClassFactory()
    assert admin_browser.get("/admin/workloads/auditevent/").status_code == 200
    assert admin_browser.get("/admin/workloads/auditevent/add/").status_code == 403
