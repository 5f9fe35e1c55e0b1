"""Deleting a class from its page (admins): the confirmation names every resource, the shared ones
and the dead letters that would be lost; keep is preselected; the slug must be typed."""

import pytest

from tests.factories import WorkloadClassFactory
from tests.workloads.deadletter_helpers import dead_letter_row, make_class
from workloads.models import Action, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.local.models import LocalTopic, LocalWorkerPool
from workloads.providers.specs import pool_spec
from workloads.services.actions import action_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def docs():
    workload_class = make_class(get_providers().queue, "doc-jobs", completion_topic="")
    get_providers().pools.ensure(pool_spec(workload_class), initial_instances=0)
    return workload_class


def test_the_class_page_offers_it_to_admins_only(admin_client, client, operator, docs):
    assert "/classes/doc-jobs/delete/" in admin_client.get("/classes/doc-jobs/").content.decode()
    client.force_login(operator)
    assert "/classes/doc-jobs/delete/" not in client.get("/classes/doc-jobs/").content.decode()
    assert client.get("/classes/doc-jobs/delete/").status_code == 403
    assert client.post("/classes/doc-jobs/delete/", {"confirm_slug": "doc-jobs"}).status_code == 403


def test_the_confirmation_names_the_resources_and_the_dead_letters(admin_client, docs):
    dead_letter_row(docs)
    WorkloadClassFactory(slug="doc-jobs-v2", dead_letter_topic=docs.dead_letter_topic)
    page = admin_client.get("/classes/doc-jobs/delete/").content.decode()
    for name in (docs.subscription, docs.dead_letter_subscription, docs.topic, docs.worker_pool):
        assert f"<code>{name}</code>" in page
    assert "kept: also used by doc-jobs-v2" in page
    assert "<strong>1</strong> undelivered dead letter would be lost" in page
    assert 'value="keep" id="delete_resources_0" required checked' in page  # keep is preselected


def test_keep_deletes_the_class_only(admin_client, docs):
    response = admin_client.post("/classes/doc-jobs/delete/", {"resources": "keep", "confirm_slug": "doc-jobs"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert not WorkloadClass.objects.filter(slug="doc-jobs").exists()
    assert LocalTopic.objects.filter(name=docs.topic).exists()


def test_a_wrong_slug_deletes_nothing(admin_client, docs):
    response = admin_client.post("/classes/doc-jobs/delete/", {"resources": "delete", "confirm_slug": "doc-job"})
    assert response.status_code == 400
    assert "Type doc-jobs to confirm." in response.content.decode()
    assert WorkloadClass.objects.filter(slug="doc-jobs").exists()


def test_delete_with_dead_letters_needs_the_box_then_runs_the_action(admin_client, docs):
    dead_letter_row(docs)
    refused = admin_client.post("/classes/doc-jobs/delete/", {"resources": "delete", "confirm_slug": "doc-jobs"})
    assert refused.status_code == 400
    assert "1 undelivered dead letters of doc-jobs would be lost" in refused.content.decode()
    assert WorkloadClass.objects.filter(slug="doc-jobs").exists()

    done = admin_client.post(
        "/classes/doc-jobs/delete/", {"resources": "delete", "force": "on", "confirm_slug": "doc-jobs"}
    )
    action = Action.objects.get(kind="delete_resources")
    assert done.status_code == 302 and done["Location"] == f"/actions/{action.pk}/"
    assert action_run(action_id=action.pk, sleep=lambda s: None).state == "succeeded"
    assert not LocalTopic.objects.filter(name=docs.topic).exists()
    assert not LocalWorkerPool.objects.filter(name=docs.worker_pool).exists()
    page = admin_client.get(f"/actions/{action.pk}/").content.decode()
    assert docs.topic in page
