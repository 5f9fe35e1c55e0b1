"""Deleting a class offers to delete or keep its cloud resources (DELETE /api/v1/classes/<slug>/
?resources=keep|delete): keep is the default; delete runs an audited, idempotent action, refused
for resources another class names and, unless forced, while undelivered dead letters remain.
Against the embedded local provider (its tables are the resources)."""

import pytest

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from tests.workloads.deadletter_helpers import dead_letter_row, make_class
from workloads.models import Action, ActionKind, AuditEvent, ClassTelemetry, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.local.models import LocalSubscription, LocalTopic, LocalWorkerPool
from workloads.providers.specs import pool_spec
from workloads.services.actions import action_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(admin_user, client_as):
    return client_as(admin_user)


@pytest.fixture
def docs():
    workload_class = make_class(get_providers().queue, "doc-jobs", completion_topic="")
    get_providers().pools.ensure(pool_spec(workload_class), initial_instances=1)
    return workload_class


def _names(workload_class):
    return {
        "subscriptions": [workload_class.subscription, workload_class.dead_letter_subscription],
        "topics": [workload_class.topic, workload_class.dead_letter_topic],
        "pool": workload_class.worker_pool,
    }


def _existing(names) -> dict:
    return {
        "subscriptions": sorted(
            LocalSubscription.objects.filter(name__in=names["subscriptions"]).values_list("name", flat=True)
        ),
        "topics": sorted(LocalTopic.objects.filter(name__in=names["topics"]).values_list("name", flat=True)),
        "pool": LocalWorkerPool.objects.filter(name=names["pool"]).exists(),
    }


def test_without_a_choice_the_class_goes_and_its_resources_stay_named_in_the_audit(admin_api, docs):
    names = _names(docs)
    response = admin_api.delete("/api/v1/classes/doc-jobs/")
    assert response.status_code == 204
    assert not WorkloadClass.objects.filter(slug="doc-jobs").exists()
    assert _existing(names) == {
        "subscriptions": sorted(names["subscriptions"]),
        "topics": sorted(names["topics"]),
        "pool": True,
    }
    event = AuditEvent.objects.get(action="workload_class.delete")
    assert event.extra["resources"] == "keep"
    assert {r["name"] for r in event.extra["cloud_resources"]} == {
        *names["subscriptions"],
        *names["topics"],
        names["pool"],
    }
    assert not Action.objects.filter(kind=ActionKind.DELETE_RESOURCES).exists()


def test_the_preview_names_the_resources_in_order_and_the_dead_letters(admin_api, docs):
    dead_letter_row(docs)
    ClassTelemetry.objects.create(workload_class=docs, fetched_at=docs.created_at, dead_letter_backlog=2.0)
    preview = admin_api.get("/api/v1/classes/doc-jobs/deletion/").json()
    assert [(r["kind"], r["name"]) for r in preview["resources"]] == [
        ("subscription", docs.subscription),
        ("subscription", docs.dead_letter_subscription),
        ("topic", docs.topic),
        ("topic", docs.dead_letter_topic),
        ("worker pool", docs.worker_pool),
    ]
    assert preview["shared"] == []
    assert (preview["dead_letters"], preview["dead_letters_mirrored"], preview["dead_letters_waiting"]) == (3, 1, 2)


def test_delete_runs_an_audited_action_that_deletes_every_resource(admin_api, admin_user, docs):
    names = _names(docs)
    response = admin_api.delete("/api/v1/classes/doc-jobs/?resources=delete")
    assert response.status_code == 202, response.json()
    assert not WorkloadClass.objects.filter(slug="doc-jobs").exists()
    action = Action.objects.get(pk=response.json()["id"])
    assert (action.kind, action.target, action.requested_by) == (ActionKind.DELETE_RESOURCES, "doc-jobs", admin_user)
    assert AuditEvent.objects.filter(action="action.delete_resources.request", workload_class_slug="doc-jobs").exists()
    assert AuditEvent.objects.get(action="workload_class.delete").extra["resources"] == "delete"

    finished = action_run(action_id=action.pk, sleep=lambda s: None)
    assert finished.state == "succeeded", finished.error
    assert [(s.key, s.result["already_gone"]) for s in finished.steps.order_by("position")] == [
        (docs.subscription, False),
        (docs.dead_letter_subscription, False),
        (docs.topic, False),
        (docs.dead_letter_topic, False),
        (docs.worker_pool, False),
    ]
    assert _existing(names) == {"subscriptions": [], "topics": [], "pool": False}


def test_a_resource_already_gone_counts_as_deleted(admin_api, docs):
    get_providers().queue.delete_subscription(docs.dead_letter_subscription)
    get_providers().pools.delete(pool_spec(docs))
    action_id = admin_api.delete("/api/v1/classes/doc-jobs/?resources=delete").json()["id"]
    finished = action_run(action_id=action_id, sleep=lambda s: None)
    assert finished.state == "succeeded"
    gone = {s.key: s.result["already_gone"] for s in finished.steps.all()}
    assert gone[docs.dead_letter_subscription] is True and gone[docs.worker_pool] is True
    assert gone[docs.topic] is False


def test_undelivered_dead_letters_refuse_the_deletion_unless_forced(admin_api, docs):
    dead_letter_row(docs)
    dead_letter_row(docs, status="replayed")  # delivered again: not lost
    refused = admin_api.delete("/api/v1/classes/doc-jobs/?resources=delete")
    assert refused.status_code == 409
    assert refused.json()["type"] == "dead_letters"
    assert refused.json()["detail"].startswith("1 undelivered dead letters of doc-jobs would be lost")
    assert WorkloadClass.objects.filter(slug="doc-jobs").exists()

    forced = admin_api.delete("/api/v1/classes/doc-jobs/?resources=delete&force=true")
    assert forced.status_code == 202
    assert AuditEvent.objects.get(action="workload_class.delete").extra["dead_letters"] == 1


def test_resources_shared_with_another_class_are_never_deleted(admin_api, docs):
    WorkloadClassFactory(slug="doc-jobs-v2", dead_letter_topic=docs.dead_letter_topic)
    refused = admin_api.delete("/api/v1/classes/doc-jobs/?resources=delete&force=true")
    assert refused.status_code == 409
    assert refused.json()["type"] == "shared_resources"
    assert refused.json()["shared"] == [{"name": docs.dead_letter_topic, "classes": ["doc-jobs-v2"]}]
    assert WorkloadClass.objects.filter(slug="doc-jobs").exists()
    assert admin_api.delete("/api/v1/classes/doc-jobs/?resources=keep").status_code == 204


def test_a_class_naming_a_resource_after_the_request_keeps_it(admin_api, docs):
    action_id = admin_api.delete("/api/v1/classes/doc-jobs/?resources=delete").json()["id"]
    WorkloadClassFactory(slug="doc-jobs-next", worker_pool=docs.worker_pool)  # created before the run
    finished = action_run(action_id=action_id, sleep=lambda s: None)
    assert finished.state == "partially_failed"
    failed = finished.steps.get(state="failed")
    assert failed.key == docs.worker_pool and "used by doc-jobs-next now" in failed.error
    assert LocalWorkerPool.objects.filter(name=docs.worker_pool).exists()


def test_a_bad_choice_is_a_400_naming_the_valid_ones(admin_api, docs):
    response = admin_api.delete("/api/v1/classes/doc-jobs/?resources=purge")
    assert response.status_code == 400
    assert '"keep", "delete"' in str(response.json())
    assert WorkloadClass.objects.filter(slug="doc-jobs").exists()


def test_operators_may_not_delete_a_class(client_as, make_user, docs):
    operator = client_as(make_user("op", Role.OPERATOR))
    assert operator.delete("/api/v1/classes/doc-jobs/?resources=delete").status_code == 403
    assert WorkloadClass.objects.filter(slug="doc-jobs").exists()


def test_a_class_another_one_routes_to_is_a_409_and_nothing_changes(admin_api, docs):
    WorkloadClassFactory(slug="legacy-jobs", route_to=docs, route_percent=10)
    for resources in ("keep", "delete"):
        response = admin_api.delete(f"/api/v1/classes/doc-jobs/?resources={resources}")
        assert response.status_code == 409, response.content
        assert response.json()["type"] == "in_use"
        assert "legacy-jobs" in response.json()["detail"]
    assert WorkloadClass.objects.filter(slug="doc-jobs").exists()
    assert not AuditEvent.objects.filter(action="workload_class.delete").exists()
    assert not Action.objects.filter(kind=ActionKind.DELETE_RESOURCES).exists()


def test_a_second_deletion_of_the_same_class_finds_it_gone(admin_user, docs):
    from workloads.errors import NotFoundError
    from workloads.services.class_deletion import workload_class_delete

    stale = WorkloadClass.objects.get(slug="doc-jobs")  # loaded by a second request before the first ran
    workload_class_delete(actor=admin_user, workload_class=docs, resources="delete")
    with pytest.raises(NotFoundError):
        workload_class_delete(actor=admin_user, workload_class=stale, resources="delete")
    assert AuditEvent.objects.filter(action="workload_class.delete").count() == 1
    assert Action.objects.filter(kind=ActionKind.DELETE_RESOURCES).count() == 1
