"""Incident mode through the Cloud Run adapter and the real run_v2 client against the in-process
Cloud Run Admin fake: exact restore, a pool the control plane may not change, and an outage of
the provider during incident mode that the actions ride out."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from tests.workloads.pools import run_pending
from workloads.models import Action, ActionKind, ActionState, Environment, HoldState, PoolHold
from workloads.providers import Providers, set_providers
from workloads.providers.base import ProviderError
from workloads.providers.gcp.cloudrun import CloudRunWorkerPools
from workloads.providers.gcp.errors import Backoff
from workloads.services import incidents as services
from workloads.services import pauses
from workloads.services.actions import PENDING_RETRY_AFTER, action_run, actions_resume

# Retries give up after a fraction of a second here; in production the deadline is a minute.
FAST = Backoff(initial=0.01, maximum=0.05, deadline=0.3)
POOLS = "projects/demo-proj/locations/us-central1/workerPools"


@pytest.fixture
def cloud(db, gcp_fakes, fake_cloud_run):
    """Four deferrable classes whose pools live in the Cloud Run fake, and one critical class."""
    # The pools live in demo-proj, so the classes' environment names that project.
    environment = Environment.objects.create(
        slug="demo", name="Demo", projects=["demo-proj"], regions=["us-central1"], monitoring_project="demo-proj"
    )
    counts = {"doc-render": 3, "indexing-pipeline": 4, "batch-enrich": 2, "report-build": 1, "policy-eval": 6}
    classes = {}
    for slug, count in counts.items():
        pool = f"{POOLS}/indexer" if slug == "indexing-pipeline" else f"{POOLS}/{slug}"
        tier = "critical" if slug == "policy-eval" else "deferrable"
        classes[slug] = WorkloadClassFactory(environment=environment, slug=slug, tier=tier, worker_pool=pool)
        fake_cloud_run.add_pool(pool, instance_count=count)
    set_providers(
        Providers(queue=None, pools=CloudRunWorkerPools(gcp_fakes.run_client, backoff=FAST), metrics=None, name="gcp")
    )
    yield classes
    set_providers(None)


def _counts(fake, classes) -> dict[str, int]:
    return {slug: fake.pools[wc.worker_pool].scaling.manual_instance_count for slug, wc in classes.items()}


def test_enter_and_exit_restore_the_exact_counts_on_cloud_run(cloud, fake_cloud_run, operator):
    before = _counts(fake_cloud_run, cloud)
    services.incident_mode_enter(actor=operator, reason="regional outage", ticket="INC-7")
    [enter] = run_pending()
    assert enter.state == ActionState.SUCCEEDED
    assert _counts(fake_cloud_run, cloud) == {**dict.fromkeys(before, 0), "policy-eval": 6}
    updates = fake_cloud_run.calls("UpdateWorkerPool")
    assert len(updates) == 4 and {tuple(u.update_mask.paths) for u in updates} == {("scaling.manual_instance_count",)}

    services.incident_mode_exit(actor=operator)
    [exit_action] = run_pending()
    assert exit_action.state == ActionState.SUCCEEDED
    assert _counts(fake_cloud_run, cloud) == before


def test_a_pool_we_may_not_change_fails_alone_with_a_readable_message(cloud, fake_cloud_run, operator):
    fake_cloud_run.deny_updates(cloud["indexing-pipeline"].worker_pool)
    services.incident_mode_enter(actor=operator, reason="regional outage")
    [enter] = run_pending()
    assert enter.state == ActionState.PARTIALLY_FAILED
    assert enter.error == "3 of 4 pools paused; indexing-pipeline: permission denied on workerPools/indexer"
    step = enter.steps.get(state="failed")
    assert "Grant its service account roles/run.developer" in step.error  # the full story is kept per step
    hold = PoolHold.objects.get(workload_class=cloud["indexing-pipeline"])
    assert hold.state == HoldState.FAILED and hold.last_error_code == "PERMISSION_DENIED"
    assert _counts(fake_cloud_run, cloud)["indexing-pipeline"] == 4  # untouched, and not "paused"

    services.incident_mode_exit(actor=operator)
    [exit_action] = run_pending()
    assert exit_action.state == ActionState.SUCCEEDED and exit_action.progress_total == 3
    assert _counts(fake_cloud_run, cloud) == {
        "doc-render": 3,
        "indexing-pipeline": 4,
        "batch-enrich": 2,
        "report-build": 1,
        "policy-eval": 6,
    }


def test_a_restore_that_is_denied_can_be_retried_once_fixed(cloud, fake_cloud_run, operator):
    services.incident_mode_enter(actor=operator, reason="x")
    run_pending()
    fake_cloud_run.deny_updates(cloud["doc-render"].worker_pool)
    services.incident_mode_exit(actor=operator)
    [exit_action] = run_pending()
    assert exit_action.state == ActionState.PARTIALLY_FAILED
    assert exit_action.error == "3 of 4 pools restored; doc-render: permission denied on workerPools/doc-render"
    assert PoolHold.objects.get(workload_class=cloud["doc-render"]).state == HoldState.RESTORING

    fake_cloud_run.denied_updates.clear()  # someone granted the role
    retried = services.incident_mode_exit(actor=operator)
    assert retried.changed
    [retry] = run_pending()
    assert retry.state == ActionState.SUCCEEDED and retry.progress_total == 1
    assert _counts(fake_cloud_run, cloud)["doc-render"] == 3
    assert not services.incident_mode_exit(actor=operator).changed  # nothing left to do


def test_an_outage_of_cloud_run_during_incident_mode_is_ridden_out(cloud, fake_cloud_run, operator):
    before = _counts(fake_cloud_run, cloud)

    # Cloud Run answers UNAVAILABLE from the start: the enter action gives the claim back and
    # stays pending; nothing was recorded from an unreadable pool.
    fake_cloud_run.fail_next("UNAVAILABLE", times=100_000)
    entered = services.incident_mode_enter(actor=operator, reason="regional outage")
    with pytest.raises(ProviderError) as caught:
        action_run(action_id=entered.incident.enter_action_id)
    assert not caught.value.permanent and caught.value.code == "UNAVAILABLE"
    enter = Action.objects.get(pk=entered.incident.enter_action_id)
    assert enter.state == ActionState.PENDING and "transient" in enter.error
    assert not PoolHold.objects.filter(previous_count__isnull=False).exists()

    # It comes back: the resume tick sends the action again and it finishes.
    fake_cloud_run.faults.reset()
    later = timezone.now() + PENDING_RETRY_AFTER + timedelta(seconds=1)
    assert actions_resume(now=later) == [enter.pk]
    assert action_run(action_id=enter.pk).state == ActionState.SUCCEEDED
    assert set(_counts(fake_cloud_run, cloud).values()) == {0, 6}

    # Down again while exiting: same story, and the counts come back exactly.
    fake_cloud_run.fail_next("UNAVAILABLE", times=100_000)
    services.incident_mode_exit(actor=operator)
    exit_action = Action.objects.get(kind=ActionKind.INCIDENT_EXIT)
    with pytest.raises(ProviderError):
        action_run(action_id=exit_action.pk)
    assert set(_counts(fake_cloud_run, cloud).values()) == {0, 6}
    fake_cloud_run.faults.reset()
    assert action_run(action_id=exit_action.pk).state == ActionState.SUCCEEDED
    assert _counts(fake_cloud_run, cloud) == before


def test_pause_resume_and_scale_one_class_on_cloud_run(cloud, fake_cloud_run, operator):
    from workloads.services.scaling import scale_request

    render = cloud["report-build"]
    pauses.pool_pause(workload_class=render, actor=operator, reason="bad deploy")
    [pause] = run_pending()
    assert pause.state == ActionState.SUCCEEDED and _counts(fake_cloud_run, cloud)["report-build"] == 0
    pauses.pool_resume(workload_class=render, actor=operator)
    [resume] = run_pending()
    assert resume.state == ActionState.SUCCEEDED and _counts(fake_cloud_run, cloud)["report-build"] == 1

    scale_request(workload_class=render, count=4, actor=None, reason="backlog 400")
    [scale] = run_pending()
    assert scale.state == ActionState.SUCCEEDED and _counts(fake_cloud_run, cloud)["report-build"] == 4
    assert fake_cloud_run.calls("UpdateWorkerPool")[-1].worker_pool.scaling.manual_instance_count == 4


def test_a_denied_scale_fails_with_the_reason(cloud, fake_cloud_run):
    from workloads.services.scaling import scale_request

    fake_cloud_run.deny_updates(cloud["doc-render"].worker_pool)
    scale_request(workload_class=cloud["doc-render"], count=5, actor=None, reason="backlog 1.5k")
    [scale] = run_pending()
    assert scale.state == ActionState.FAILED
    assert scale.error.startswith(f"1 of 1 failed (scale): {cloud['doc-render'].worker_pool}: Permission denied")
    assert _counts(fake_cloud_run, cloud)["doc-render"] == 3


def test_drift_on_cloud_run_names_who_changed_the_pool(cloud, fake_cloud_run):
    from workloads.models import PoolControl
    from workloads.services.scaling import scaling_controller_tick

    now = timezone.now()
    scaling_controller_tick(now=now)  # adopts the current counts
    fake_cloud_run.add_pool(cloud["batch-enrich"].worker_pool, instance_count=9)  # someone ran gcloud
    summary = scaling_controller_tick(now=now + timedelta(minutes=1))
    assert summary.drifted == ["batch-enrich"]
    control = PoolControl.objects.get(workload_class=cloud["batch-enrich"])
    assert control.drift_detail == "expected 2 instances, found 9 (last changed by someone@example.com)"
