"""Each validation rule of the registry, valid and invalid, through the API (400 names the field)."""

import pytest

from tests.factories import DOCUMENT_SCHEMA, class_payload
from workloads.models import Environment, WorkloadClass

URL = "/api/v1/classes/"


@pytest.fixture
def admin_api(client_as, admin_user):
    return client_as(admin_user)


def _post(client, **overrides):
    return client.post(URL, class_payload(**overrides), format="json")


def _assert_rejected(response, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["type"] == "validation_error"
    assert field in body["errors"], body["errors"]
    assert not WorkloadClass.objects.exists()


def test_it_creates_a_valid_class_with_derived_resource_names(admin_api):
    response = _post(admin_api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["topic"] == "projects/local-project/topics/doc-jobs"
    assert body["worker_pool"] == "projects/local-project/locations/us-central1/workerPools/doc-jobs"
    assert body["ack_deadline_seconds"] == 300
    assert [slo["kind"] for slo in body["slos"]] == ["queue_age", "success_ratio"]
    assert body["schedules"][0]["timezone"] == "Europe/Paris"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_delivery_attempts": 4}, "max_delivery_attempts"),
        ({"max_delivery_attempts": 101}, "max_delivery_attempts"),
        ({"min_backoff_seconds": 60, "max_backoff_seconds": 30}, "min_backoff_seconds"),
        ({"max_backoff_seconds": 601}, "max_backoff_seconds"),
        ({"min_instances": 6, "max_instances": 5}, "min_instances"),
        ({"max_instances": 1001}, "max_instances"),
        ({"dedup_ttl_seconds": 59}, "dedup_ttl_seconds"),
        ({"dedup_ttl_seconds": 7 * 86400 + 1}, "dedup_ttl_seconds"),
        ({"payload_schema": {"type": "object", "properties": {"a": {"type": "no-such-type"}}}}, "payload_schema"),
        ({"payload_schema": {"type": "array"}}, "payload_schema"),
        ({"payload_schema": ["not", "an", "object"]}, "payload_schema"),
        ({"idempotency_key_template": "{tenant_id}:{note}"}, "idempotency_key_template"),
        ({"idempotency_key_template": "{tenant_id}:{missing}"}, "idempotency_key_template"),
        ({"idempotency_key_template": "constant"}, "idempotency_key_template"),
        ({"idempotency_key_template": "{tenant_id.attr}"}, "idempotency_key_template"),
        ({"ordering_key_template": "{note}"}, "ordering_key_template"),
        ({"timeout_tier": "custom"}, "timeout_seconds"),
        ({"timeout_tier": "custom", "timeout_seconds": 3601}, "timeout_seconds"),
        ({"timeout_tier": "standard", "timeout_seconds": 20}, "timeout_seconds"),
        ({"topic": "topics/doc-jobs"}, "topic"),
        ({"topic": "projects/my-project/topics/goog-reserved"}, "topic"),
        ({"subscription": "projects/my-project/topics/x-sub"}, "subscription"),
        ({"worker_pool": "projects/my-project/locations/us-central1/workerPools/Bad_Name"}, "worker_pool"),
        ({"worker_pool": "projects/my-project/workerPools/pool"}, "worker_pool"),
        ({"dead_letter_topic": "projects/local-project/topics/doc-jobs"}, "dead_letter_topic"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"slug": "x"}, "slug"),
        ({"tier": "urgent"}, "tier"),
        ({"unexpected_field": 1}, "unexpected_field"),
    ],
)
def test_it_rejects_invalid_class_settings(admin_api, overrides, field):
    _assert_rejected(_post(admin_api, **overrides), field)


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_delivery_attempts": 5},
        {"max_delivery_attempts": 100},
        {"min_backoff_seconds": 600, "max_backoff_seconds": 600},
        {"min_instances": 1000, "max_instances": 1000},
        {"dedup_ttl_seconds": 60},
        {"dedup_ttl_seconds": 7 * 86400},
        {"ordering_key_template": "{tenant_id}"},
        {"timeout_tier": "custom", "timeout_seconds": 90},
        {
            "environment": "eu",
            "topic": "projects/my-project-1/topics/doc.jobs~v2",
            "worker_pool": "projects/my-project-1/locations/europe-west1/workerPools/doc-jobs",
        },
    ],
)
def test_it_accepts_boundary_values(admin_api, overrides):
    Environment.objects.create(
        slug="eu", name="EU", projects=["my-project-1"], regions=["europe-west1"], monitoring_project="my-project-1"
    )
    response = _post(admin_api, **overrides)
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("slo", "field"),
    [
        ({"kind": "success_ratio", "target_percent": "100"}, "slos.0.target_percent"),
        ({"kind": "success_ratio", "target_percent": "0"}, "slos.0.target_percent"),
        ({"kind": "success_ratio", "target_percent": "99", "window_days": 91}, "slos.0.window_days"),
        ({"kind": "success_ratio", "target_percent": "99", "window_days": 0}, "slos.0.window_days"),
        ({"kind": "queue_age", "target_percent": "99", "percentile": "95"}, "slos.0.threshold_seconds"),
        ({"kind": "completion_latency", "target_percent": "99", "threshold_seconds": 5}, "slos.0.percentile"),
        ({"kind": "success_ratio", "target_percent": "99", "threshold_seconds": 5}, "slos.0.threshold_seconds"),
    ],
)
def test_it_rejects_invalid_slos(admin_api, slo, field):
    _assert_rejected(_post(admin_api, slos=[slo]), field)


def test_it_accepts_slo_targets_just_inside_the_bounds(admin_api):
    slos = [
        {"kind": "success_ratio", "target_percent": "99.999", "window_days": 90},
        {"kind": "queue_age", "target_percent": "0.1", "percentile": "50", "threshold_seconds": 1, "window_days": 1},
    ]
    assert _post(admin_api, slos=slos).status_code == 201


def test_it_rejects_two_slos_of_one_kind(admin_api):
    slos = [{"kind": "success_ratio", "target_percent": "99"}, {"kind": "success_ratio", "target_percent": "98"}]
    _assert_rejected(_post(admin_api, slos=slos), "slos.1.kind")


def _schedule(**overrides):
    schedule = {
        "name": "weekend",
        "days_of_week": [5, 6],
        "start_time": "00:00",
        "end_time": "00:00",
        "timezone": "UTC",
        "min_instances": 0,
        "max_instances": 1,
    }
    schedule.update(overrides)
    return schedule


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        (_schedule(days_of_week=[7]), "schedules.0.days_of_week"),
        (_schedule(days_of_week=[]), "schedules.0.days_of_week"),
        (_schedule(days_of_week=[1, 1]), "schedules.0.days_of_week"),
        (_schedule(start_time="25:00"), "schedules.0.start_time"),
        (_schedule(timezone="Mars/Olympus_Mons"), "schedules.0.timezone"),
        (_schedule(min_instances=3, max_instances=2), "schedules.0.min_instances"),
        (_schedule(max_instances=1001), "schedules.0.max_instances"),
    ],
)
def test_it_rejects_invalid_schedules(admin_api, schedule, field):
    _assert_rejected(_post(admin_api, schedules=[schedule]), field)


def test_it_rejects_duplicate_schedule_names(admin_api):
    _assert_rejected(_post(admin_api, schedules=[_schedule(), _schedule()]), "schedules.1.name")


def test_it_rejects_unknown_fields_in_nested_objects(admin_api):
    _assert_rejected(
        _post(admin_api, slos=[{"kind": "success_ratio", "target_percent": "99", "colour": "red"}]), "slos.0.colour"
    )


def test_the_slug_is_stable(admin_api):
    assert _post(admin_api).status_code == 201
    response = admin_api.patch(f"{URL}doc-jobs/", {"slug": "renamed"}, format="json")
    assert response.status_code == 400
    assert "slug" in response.json()["errors"]
    assert WorkloadClass.objects.filter(slug="doc-jobs").exists()


def test_an_update_is_validated_like_a_create(admin_api):
    assert _post(admin_api).status_code == 201
    response = admin_api.patch(f"{URL}doc-jobs/", {"min_backoff_seconds": 601}, format="json")
    assert response.status_code == 400
    assert "min_backoff_seconds" in response.json()["errors"]
    response = admin_api.patch(f"{URL}doc-jobs/", {"min_instances": 9}, format="json")
    assert response.status_code == 400
    assert WorkloadClass.objects.get(slug="doc-jobs").min_instances == 0


def test_a_schema_change_that_drops_a_key_field_is_refused(admin_api):
    assert _post(admin_api).status_code == 201
    schema = {**DOCUMENT_SCHEMA, "required": ["tenant_id", "document_id"]}
    response = admin_api.patch(f"{URL}doc-jobs/", {"payload_schema": schema}, format="json")
    assert response.status_code == 400
    assert "idempotency_key_template" in response.json()["errors"]


def test_put_replaces_nested_lists_and_keeps_matching_ids(admin_api):
    created = _post(admin_api).json()
    queue_age_id = next(s["id"] for s in created["slos"] if s["kind"] == "queue_age")
    body = {**created, "slos": [{**created["slos"][0], "target_percent": "99.9"}], "schedules": []}
    response = admin_api.put(f"{URL}doc-jobs/", body, format="json")
    assert response.status_code == 200, response.content
    updated = response.json()
    assert [s["id"] for s in updated["slos"]] == [queue_age_id]
    assert updated["slos"][0]["target_percent"] == "99.9000"
    assert updated["schedules"] == []


def test_it_filters_searches_and_orders(admin_api):
    assert _post(admin_api).status_code == 201
    assert _post(admin_api, slug="batch-jobs", tier="deferrable", owner_team="data").status_code == 201
    assert [c["slug"] for c in admin_api.get(f"{URL}?tier=deferrable").json()["results"]] == ["batch-jobs"]
    assert [c["slug"] for c in admin_api.get(f"{URL}?ordering=-slug").json()["results"]] == ["doc-jobs", "batch-jobs"]
    assert [c["slug"] for c in admin_api.get(f"{URL}?search=data").json()["results"]] == ["batch-jobs"]
    page = admin_api.get(f"{URL}?page_size=1").json()
    assert page["count"] == 2 and len(page["results"]) == 1 and page["next"]
