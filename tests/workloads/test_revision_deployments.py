"""Deployments from the pool's revision: the scaling controller's read of the pool notices a new
revision (runfleet's start, locally; a Cloud Run deploy on GCP: tests/contract) and records it."""

from datetime import timedelta

from django.utils import timezone

from tests.workloads.pools import pooled_class
from workloads.models import AuditEvent, Deployment, DeploymentSource, PoolControl
from workloads.providers.local.pools import local_pools_new_revision
from workloads.services.scaling import scaling_controller_tick


def test_a_new_revision_is_a_deployment_and_the_first_one_is_only_learnt(db):
    render = pooled_class("doc-render", instances=1)
    first = local_pools_new_revision(now=timezone.now())
    scaling_controller_tick(now=timezone.now())
    assert PoolControl.objects.get(workload_class=render).last_revision == first
    assert not Deployment.objects.exists()  # the revision it found, not a change it saw

    scaling_controller_tick(now=timezone.now())
    assert not Deployment.objects.exists()  # unchanged

    second = local_pools_new_revision(now=timezone.now() + timedelta(seconds=5))
    scaling_controller_tick(now=timezone.now())
    deployment = Deployment.objects.get()
    assert deployment.source == DeploymentSource.REVISION and deployment.revision == second
    assert deployment.label == second and deployment.recorded_by_label == "system"
    event = AuditEvent.objects.get(action="deployment.record")
    assert event.workload_class_slug == "doc-render" and event.extra["revision"] == second


def test_a_class_whose_controller_is_off_still_records_its_deployments(db):
    render = pooled_class("doc-render", instances=1)
    local_pools_new_revision(now=timezone.now())
    scaling_controller_tick(now=timezone.now())
    PoolControl.objects.filter(workload_class=render).update(controller_enabled=False)
    local_pools_new_revision(now=timezone.now() + timedelta(seconds=5))
    scaling_controller_tick(now=timezone.now())
    assert Deployment.objects.filter(workload_class=render, source=DeploymentSource.REVISION).count() == 1


def test_the_controller_names_a_recent_deployment_in_its_reason(db):
    from tests.workloads.pools import fresh_backlog
    from workloads.models import Action, ActionKind
    from workloads.services.deployments import deployment_record

    render = pooled_class("doc-render", instances=2, throughput_per_instance=1.0, drain_target_seconds=100)
    now = timezone.now()
    deployment_record(
        workload_class=render,
        actor=None,
        source=DeploymentSource.API,
        now=now,
        version="v2.0",
        deployed_at=now - timedelta(minutes=12),
    )
    fresh_backlog(render, backlog=800, queue_age=60, now=now)
    scaling_controller_tick(now=now)
    action = Action.objects.get(kind=ActionKind.SCALE)
    assert action.reason.endswith("; deploy v2.0 12 min ago"), action.reason
    assert PoolControl.objects.get(workload_class=render).last_decision.endswith("deploy v2.0 12 min ago")


def test_a_deployment_older_than_the_window_is_not_named(db):
    from tests.workloads.pools import fresh_backlog
    from workloads.models import Action, ActionKind
    from workloads.services.deployments import deployment_record

    render = pooled_class("doc-render", instances=2, throughput_per_instance=1.0, drain_target_seconds=100)
    now = timezone.now()
    deployment_record(
        workload_class=render,
        actor=None,
        source=DeploymentSource.API,
        now=now,
        version="v1",
        deployed_at=now - timedelta(hours=2),
    )
    fresh_backlog(render, backlog=800, queue_age=60, now=now)
    scaling_controller_tick(now=now)
    assert "deploy" not in Action.objects.get(kind=ActionKind.SCALE).reason
