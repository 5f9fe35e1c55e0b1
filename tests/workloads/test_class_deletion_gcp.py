"""Deleting a class with its resources on Google Cloud: the delete_resources action through the
real Pub/Sub client on Google's emulator and the real run_v2 client on the Cloud Run fake, with a
step Cloud Run refuses (a permanent, readable failure that leaves the rest deleted)."""

import io

import pytest
from django.core.management import CommandError, call_command
from google.api_core import exceptions as gexc

from tests.factories import WorkloadClassFactory
from workloads.models import Action, ActionState
from workloads.providers import Providers, set_providers
from workloads.providers.gcp.cloudrun import CloudRunWorkerPools
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.pubsub import PubSubQueue
from workloads.providers.specs import queue_spec
from workloads.services.actions import action_run
from workloads.services.class_deletion import workload_class_delete

pytestmark = [pytest.mark.emulator, pytest.mark.django_db]
FAST = Backoff(initial=0.01, maximum=0.05, deadline=0.5)


@pytest.fixture
def cloud(pubsub_emulator, pubsub_clients, gcp_fakes, fake_cloud_run):
    publisher, subscriber, ordered_publisher = pubsub_clients
    queue = PubSubQueue(publisher=publisher, ordered_publisher=ordered_publisher, subscriber=subscriber, backoff=FAST)
    set_providers(
        Providers(
            queue=queue,
            pools=CloudRunWorkerPools(gcp_fakes.run_client, backoff=FAST, operation_timeout=10),
            metrics=None,
            name="gcp",
        )
    )
    yield queue, publisher, subscriber
    set_providers(None)


def _class(queue, fake_cloud_run, slug):
    workload_class = WorkloadClassFactory(slug=slug, completion_topic="")
    queue.ensure_resources(queue_spec(workload_class))
    fake_cloud_run.add_pool(workload_class.worker_pool, instance_count=2)
    return workload_class


def _gone(get) -> bool:
    try:
        get()
    except gexc.NotFound:
        return True
    return False


def test_the_action_deletes_every_resource_on_pubsub_and_cloud_run(cloud, fake_cloud_run, admin_user):
    queue, publisher, subscriber = cloud
    docs = _class(queue, fake_cloud_run, "gcp-del-all")
    action = workload_class_delete(actor=admin_user, workload_class=docs, resources="delete")
    finished = action_run(action_id=action.pk, sleep=lambda s: None)
    assert finished.state == ActionState.SUCCEEDED, finished.error
    for name in (docs.subscription, docs.dead_letter_subscription):
        assert _gone(lambda name=name: subscriber.get_subscription(request={"subscription": name}))
    for name in (docs.topic, docs.dead_letter_topic):
        assert _gone(lambda name=name: publisher.get_topic(request={"topic": name}))
    assert docs.worker_pool not in fake_cloud_run.pools
    assert [r.name for r in fake_cloud_run.calls("DeleteWorkerPool")] == [docs.worker_pool]


def test_a_refused_step_fails_alone_with_what_to_grant(cloud, fake_cloud_run, admin_user):
    queue, publisher, _subscriber = cloud
    docs = _class(queue, fake_cloud_run, "gcp-del-denied")
    fake_cloud_run.deny_updates(docs.worker_pool)  # may read the pool, not change or delete it
    action = workload_class_delete(actor=admin_user, workload_class=docs, resources="delete")
    finished = action_run(action_id=action.pk, sleep=lambda s: None)
    assert finished.state == ActionState.PARTIALLY_FAILED
    failed = finished.steps.get(state="failed")
    assert failed.key == docs.worker_pool and "roles/run.developer" in failed.error
    assert docs.worker_pool in fake_cloud_run.pools
    assert _gone(lambda: publisher.get_topic(request={"topic": docs.topic}))

    # Once the role is granted, the command line finishes the deletion from that action.
    fake_cloud_run.denied_updates.clear()
    out = io.StringIO()
    call_command("delete_resources", str(action.pk), stdout=out)
    assert f"{docs.worker_pool}: deleted" in out.getvalue()
    assert docs.worker_pool not in fake_cloud_run.pools
    with pytest.raises(CommandError, match="nothing is left"):
        call_command("delete_resources", str(Action.objects.latest("pk").pk), stdout=io.StringIO())
