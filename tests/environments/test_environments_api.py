"""Environments through the API: who may change them, what they refuse, and how they bound a
class's resource names. The upgrade path (existing classes join the default environment) is in
test_environment_migration.py."""

import pytest

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory, class_payload
from workloads.models import AuditEvent, Environment, WorkloadClass

URL = "/api/v1/environments/"
STAGING = {
    "slug": "staging",
    "name": "Staging",
    "projects": ["acme-staging"],
    "regions": ["europe-west4"],
    "monitoring_project": "acme-staging-scope",
}


@pytest.fixture
def admin_api(client_as, admin_user):
    return client_as(admin_user)


def test_admins_create_and_change_environments_and_each_change_is_audited(admin_api):
    created = admin_api.post(URL, STAGING, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["projects"] == ["acme-staging"] and created.json()["class_count"] == 0
    changed = admin_api.patch(f"{URL}staging/", {"projects": ["acme-staging", "acme-staging-2"]}, format="json")
    assert changed.status_code == 200, changed.content
    events = {e.action: e for e in AuditEvent.objects.filter(action__startswith="environment.")}
    assert set(events) == {"environment.create", "environment.update"}
    assert events["environment.update"].changes == {"projects": [["acme-staging"], ["acme-staging", "acme-staging-2"]]}
    deleted = admin_api.delete(f"{URL}staging/")
    assert deleted.status_code == 204
    assert AuditEvent.objects.filter(action="environment.delete").count() == 1


def test_viewers_read_environments_and_cannot_change_them(client_as, make_user):
    Environment.objects.create(**STAGING)
    viewer = client_as(make_user("vic-viewer", Role.VIEWER))
    listed = viewer.get(URL)
    assert listed.status_code == 200 and [e["slug"] for e in listed.json()["results"]] == ["staging"]
    assert viewer.patch(f"{URL}staging/", {"name": "x"}, format="json").status_code == 403
    assert Environment.objects.get(slug="staging").name == "Staging"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"projects": []}, "projects"),
        ({"projects": ["Not_A_Project"]}, "projects"),
        ({"projects": ["acme-staging", "acme-staging"]}, "projects"),
        ({"regions": ["mars"]}, "regions"),
        ({"monitoring_project": "x"}, "monitoring_project"),
        ({"slug": "Bad Slug"}, "slug"),
        ({"projects": "acme-staging"}, "projects"),
    ],
)
def test_bad_environments_are_refused_naming_the_field(admin_api, change, field):
    response = admin_api.post(URL, {**STAGING, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert not Environment.objects.exists()


def test_a_class_takes_its_resource_names_from_its_environment_and_may_not_leave_it(admin_api):
    Environment.objects.create(**STAGING)
    created = admin_api.post("/api/v1/classes/", class_payload(environment="staging"), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["environment"] == "staging"
    assert body["topic"] == "projects/acme-staging/topics/doc-jobs"
    assert body["worker_pool"] == "projects/acme-staging/locations/europe-west4/workerPools/doc-jobs"

    # A staging class must not publish to another project's topic, nor run its pool elsewhere.
    moved = admin_api.patch("/api/v1/classes/doc-jobs/", {"topic": "projects/acme-prod/topics/doc-jobs"}, format="json")
    assert moved.status_code == 400 and "acme-prod" in moved.json()["errors"]["topic"][0]
    elsewhere = admin_api.patch(
        "/api/v1/classes/doc-jobs/",
        {"worker_pool": "projects/acme-staging/locations/us-east1/workerPools/doc-jobs"},
        format="json",
    )
    assert elsewhere.status_code == 400 and "us-east1" in elsewhere.json()["errors"]["worker_pool"][0]


def test_an_environment_keeps_the_projects_and_regions_its_classes_use(admin_api):
    Environment.objects.create(**STAGING)
    assert admin_api.post("/api/v1/classes/", class_payload(environment="staging"), format="json").status_code == 201
    narrowed = admin_api.patch(f"{URL}staging/", {"projects": ["acme-other"]}, format="json")
    assert narrowed.status_code == 400 and "doc-jobs.topic" in narrowed.json()["errors"]["projects"][0]
    in_use = admin_api.delete(f"{URL}staging/")
    assert in_use.status_code == 409 and "doc-jobs" in in_use.json()["detail"]
    assert Environment.objects.get(slug="staging").projects == ["acme-staging"]


def test_a_class_without_an_environment_joins_the_default_one(admin_api, settings):
    created = admin_api.post("/api/v1/classes/", class_payload(), format="json")
    assert created.status_code == 201 and created.json()["environment"] == settings.DEFAULT_ENVIRONMENT
    default = Environment.objects.get(slug=settings.DEFAULT_ENVIRONMENT)
    assert default.projects == [settings.GOOGLE_CLOUD_PROJECT] and default.regions == [settings.GOOGLE_CLOUD_REGION]


def test_the_class_list_filters_by_environment(admin_api):
    staging = Environment.objects.create(**STAGING)
    WorkloadClassFactory(slug="prod-one")
    WorkloadClassFactory(slug="staging-one", environment=staging)
    assert WorkloadClass.objects.get(slug="staging-one").topic.startswith("projects/acme-staging/")
    listed = admin_api.get("/api/v1/classes/?environment=staging")
    assert [c["slug"] for c in listed.json()["results"]] == ["staging-one"]
    unknown = admin_api.get("/api/v1/classes/?environment=nowhere")
    assert unknown.status_code == 400 and "environment" in unknown.json()["errors"]
