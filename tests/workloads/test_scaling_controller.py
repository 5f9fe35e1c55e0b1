"""The scaling controller tick against the local provider: scale actions with reasons, schedules,
cooldown, stale telemetry, paused classes, drift detection and take-over."""

from datetime import time, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from tests.factories import SchedulePolicyFactory
from tests.workloads.pools import fresh_backlog, instances, pooled_class, run_pending, someone_else_sets
from workloads.models import Action, ActionKind, ActionState, AuditEvent, PoolControl
from workloads.services import incidents, pauses
from workloads.services.scaling import (
    pool_control_take_over,
    pool_control_update,
    scale_request,
    scaling_controller_tick,
)


@pytest.fixture
def render(db):
    # 1 message/s per instance, drain in 100 s: each instance clears 100 messages of backlog.
    return pooled_class(
        "doc-render", instances=2, tier="standard", throughput_per_instance=1.0, drain_target_seconds=100
    )


def test_a_backlog_scales_the_pool_through_an_action_with_its_reason(render):
    now = timezone.now()
    fresh_backlog(render, backlog=1_234, queue_age=340, now=now)
    summary = scaling_controller_tick(now=now)
    assert summary.scaled == {"doc-render": 10}  # ceil(1234 / 100) = 13, clamped to the baseline max 10
    action = Action.objects.get(kind=ActionKind.SCALE)
    assert action.workload_class == render and action.requested_by is None
    assert action.reason == "backlog 1.2k, queue age 340 s (baseline: max 10)"
    assert action.parameters == {"count": 10}
    run_pending()
    assert instances(render) == 10
    control = PoolControl.objects.get(workload_class=render)
    assert control.last_set_count == 10 and control.last_set_reason == action.reason
    assert AuditEvent.objects.filter(action="action.scale.finish", result="success").exists()


def test_a_tick_while_the_change_is_under_way_requests_nothing_more(render):
    now = timezone.now()
    fresh_backlog(render, backlog=800, queue_age=60, now=now)
    scaling_controller_tick(now=now)
    assert scaling_controller_tick(now=now).skipped == {"doc-render": "a pool action is in progress"}
    assert Action.objects.filter(kind=ActionKind.SCALE).count() == 1


@override_settings(SCALING_COOLDOWN_DOWN_SECONDS=600, SCALING_COOLDOWN_UP_SECONDS=180)
def test_changes_wait_for_the_cooldown_and_schedules_apply_when_their_window_opens(render):
    start = timezone.now().replace(second=0, microsecond=0)
    fresh_backlog(render, backlog=600, queue_age=30, now=start)
    scaling_controller_tick(now=start)
    run_pending()
    assert instances(render) == 6

    later = start + timedelta(minutes=5)
    fresh_backlog(render, backlog=100, queue_age=5, now=later)
    assert scaling_controller_tick(now=later).scaled == {}  # down within 10 minutes of the last change
    assert "[cooldown]" in PoolControl.objects.get(workload_class=render).last_decision

    # A window with max 2 opens now: it applies at once, cooldown or not.
    all_day = {"start_time": time(0), "end_time": time(0)}
    SchedulePolicyFactory(workload_class=render, name="weekend", min_instances=0, max_instances=2, **all_day)
    assert scaling_controller_tick(now=later).scaled == {"doc-render": 2}
    assert Action.objects.filter(kind=ActionKind.SCALE).latest("id").reason == "weekend policy: max 2"


def test_stale_telemetry_leaves_the_pool_as_it_is(render):
    now = timezone.now()
    fresh_backlog(render, backlog=5_000, queue_age=600, now=now - timedelta(hours=1))
    assert scaling_controller_tick(now=now).scaled == {}
    assert PoolControl.objects.get(workload_class=render).last_decision.startswith("no fresh backlog data")


def test_paused_classes_are_left_alone_while_the_incident_lasts(render, operator):
    deferrable = pooled_class("batch-enrich", instances=3)
    now = timezone.now()
    incidents.incident_mode_enter(actor=operator, reason="outage")
    run_pending()
    fresh_backlog(deferrable, backlog=50_000, queue_age=3_000, now=now)
    summary = scaling_controller_tick(now=now)
    assert summary.skipped["batch-enrich"] == "paused"
    assert not Action.objects.filter(kind=ActionKind.SCALE, workload_class=deferrable).exists()
    assert instances(deferrable) == 0
    control = PoolControl.objects.get(workload_class=deferrable)
    assert control.last_target == 0 and control.drifted_since is None


def test_a_scale_requested_before_a_pause_does_not_undo_it(render, operator):
    scale = scale_request(workload_class=render, count=7, actor=None, reason="backlog")
    pauses.pool_pause(workload_class=render, actor=operator, reason="bad deploy")
    scale.refresh_from_db()
    assert scale.state == ActionState.CANCELLED
    run_pending()
    assert instances(render) == 0


def test_a_pool_changed_by_someone_else_is_flagged_as_drifted_and_not_fought(render, operator):
    now = timezone.now()
    fresh_backlog(render, backlog=200, queue_age=10, now=now)
    scaling_controller_tick(now=now)  # adopts 2 as its starting point; target 2: nothing to do
    assert PoolControl.objects.get(workload_class=render).last_set_count == 2

    someone_else_sets(render, 7, who="crema@proj.iam.gserviceaccount.com")
    summary = scaling_controller_tick(now=now + timedelta(minutes=1))
    assert summary.drifted == ["doc-render"] and summary.scaled == {}
    control = PoolControl.objects.get(workload_class=render)
    assert control.is_drifted and control.last_observed_count == 7
    assert control.drift_detail == "expected 2 instances, found 7 (last changed by crema@proj.iam.gserviceaccount.com)"
    event = AuditEvent.objects.get(action="pool.drift")
    assert event.extra == {"expected": 2, "actual": 7, "last_modifier": "crema@proj.iam.gserviceaccount.com"}

    # Later ticks keep away, even when the other writer happens to land on our number.
    someone_else_sets(render, 2)
    assert scaling_controller_tick(now=now + timedelta(minutes=30)).skipped == {"doc-render": "drifted"}
    assert AuditEvent.objects.filter(action="pool.drift").count() == 1
    assert not Action.objects.filter(kind=ActionKind.SCALE).exists()

    someone_else_sets(render, 9)
    scaling_controller_tick(now=now + timedelta(minutes=31))
    pool_control_take_over(workload_class=render, actor=operator)
    control.refresh_from_db()
    assert not control.is_drifted and control.last_set_count == 9 and control.takeover_by == operator
    assert AuditEvent.objects.get(action="pool.take_over").actor == operator
    fresh_backlog(render, backlog=200, queue_age=10, now=now + timedelta(minutes=32))
    summary = scaling_controller_tick(now=now + timedelta(minutes=32))
    assert summary.scaled == {"doc-render": 2}  # managed again: a backlog of 200 needs 2


def test_our_own_pause_is_not_mistaken_for_drift(render, operator):
    now = timezone.now()
    scaling_controller_tick(now=now)
    pauses.pool_pause(workload_class=render, actor=operator, reason="x")
    run_pending()
    pauses.pool_resume(workload_class=render, actor=operator)
    run_pending()
    scaling_controller_tick(now=now + timedelta(minutes=1))
    assert not PoolControl.objects.get(workload_class=render).is_drifted


def test_the_controller_can_be_switched_off_per_class(render, operator):
    pool_control_update(workload_class=render, actor=operator, controller_enabled=False)
    now = timezone.now()
    fresh_backlog(render, backlog=5_000, queue_age=600, now=now)
    assert scaling_controller_tick(now=now).skipped == {"doc-render": "controller off"}
    assert AuditEvent.objects.get(action="pool.controller_disable").actor == operator


def test_an_unreadable_pool_is_skipped_with_the_reason(db):
    from tests.factories import WorkloadClassFactory

    WorkloadClassFactory(slug="no-pool")  # its pool was never created
    summary = scaling_controller_tick(now=timezone.now())
    assert summary.skipped == {"no-pool": "pool unreadable"}
    assert "could not read the pool" in PoolControl.objects.get().last_decision


@override_settings(SCALING_COOLDOWN_DOWN_SECONDS=0)
def test_a_pool_that_is_still_completing_work_is_not_taken_to_zero_on_an_empty_sample(render):
    from workloads.models import MetricRollup, Resolution

    render.min_instances = 0
    render.save()
    now = timezone.now().replace(second=0, microsecond=0)
    fresh_backlog(render, backlog=0, queue_age=0, now=now)
    MetricRollup.objects.create(
        workload_class=render,
        resolution=Resolution.MINUTE,
        bucket_start=now - timedelta(minutes=2),
        completed=30,
        failed=2,
        fetched_at=now,
    )
    assert scaling_controller_tick(now=now).scaled == {"doc-render": 1}
    assert "still completing work (32 jobs lately)" in Action.objects.get(kind=ActionKind.SCALE).reason
