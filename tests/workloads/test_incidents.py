"""Incident mode and per-class pauses against the local provider: enter, exit, expiry, extend,
exact restore (also after a schedule change), idempotent retries, crash recovery, retention
warnings, and what the rest of the product sees (banner, ingestion's pause check, audit)."""

from datetime import time, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.factories import SchedulePolicyFactory
from tests.workloads.pools import fresh_backlog, instances, pooled_class, run_pending
from workloads.errors import ApplicationError
from workloads.models import (
    Action,
    ActionKind,
    ActionState,
    AuditEvent,
    HoldState,
    IncidentMode,
    PoolControl,
    PoolHold,
    RestoreRule,
)
from workloads.providers import Providers, get_providers, set_providers
from workloads.providers.base import ProviderError
from workloads.selectors.incidents import active_incident, retention_warnings
from workloads.selectors.pauses import class_is_paused
from workloads.services import incidents as services
from workloads.services import pauses
from workloads.services.actions import STALE_AFTER, action_run, actions_resume


@pytest.fixture
def fleet(db):
    """Three deferrable classes at different counts, and a critical one incident mode leaves alone."""
    return {
        "docs": pooled_class("doc-render", instances=3),
        "index": pooled_class("indexing-pipeline", instances=5),
        "enrich": pooled_class("batch-enrich", instances=0),
        "policy": pooled_class("policy-eval", instances=2, tier="critical"),
    }


def _enter(actor, **kwargs):
    kwargs.setdefault("reason", "database failover")
    return services.incident_mode_enter(actor=actor, **kwargs)


def _counts(fleet) -> dict[str, int]:
    return {name: instances(wc) for name, wc in fleet.items()}


def test_entering_pauses_every_deferrable_pool_after_recording_its_count(fleet, operator):
    result = _enter(operator, ticket="INC-42")
    assert result.changed
    incident = result.incident
    assert incident.is_active and incident.started_by == operator and incident.ticket == "INC-42"
    assert incident.expires_at - incident.started_at == timedelta(hours=4)  # the default
    [action] = run_pending()
    assert action.kind == ActionKind.INCIDENT_ENTER and action.state == ActionState.SUCCEEDED
    assert _counts(fleet) == {"docs": 0, "index": 0, "enrich": 0, "policy": 2}
    holds = {h.workload_class.slug: h for h in incident.holds.all()}
    assert {slug: h.previous_count for slug, h in holds.items()} == {
        "doc-render": 3,
        "indexing-pipeline": 5,
        "batch-enrich": 0,
    }
    assert all(h.state == HoldState.ACTIVE and h.paused_at is not None for h in holds.values())
    assert active_incident() == incident
    assert class_is_paused(fleet["docs"]) and not class_is_paused(fleet["policy"])
    event = AuditEvent.objects.get(action="incident_mode.enter")
    assert event.actor == operator and event.extra["ticket"] == "INC-42"
    assert sorted(event.extra["classes"]) == ["batch-enrich", "doc-render", "indexing-pipeline"]
    assert AuditEvent.objects.filter(action="action.incident_enter.finish", result="success").exists()


def test_entering_twice_does_nothing_new(fleet, operator, admin_user):
    first = _enter(operator)
    second = _enter(admin_user, reason="another page")
    assert not second.changed and second.incident == first.incident
    assert IncidentMode.objects.count() == 1 and PoolHold.objects.count() == 3
    assert Action.objects.filter(kind=ActionKind.INCIDENT_ENTER).count() == 1


def test_the_database_allows_only_one_active_incident(fleet, operator):
    from django.db import IntegrityError, transaction

    incident = _enter(operator).incident
    with pytest.raises(IntegrityError), transaction.atomic():
        IncidentMode.objects.create(
            reason="x", started_by_label="x", started_at=incident.started_at, expires_at=incident.expires_at
        )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"reason": "  "}, "reason"), ({"expires_in": timedelta(minutes=1)}, "expires_in_minutes")],
)
def test_a_reason_and_a_sane_expiry_are_required(fleet, operator, kwargs, field):
    with pytest.raises(ValidationError) as caught:
        _enter(operator, **kwargs)
    assert field in caught.value.message_dict
    assert not IncidentMode.objects.exists()


def test_exit_restores_the_exact_counts_and_is_safe_to_retry(fleet, operator):
    _enter(operator)
    run_pending()
    fleet["docs"].refresh_from_db()
    result = services.incident_mode_exit(actor=operator, reason="failover done")
    assert result.changed and result.incident.end_reason == "exited" and active_incident() is None
    [action] = run_pending()
    assert action.kind == ActionKind.INCIDENT_EXIT and action.state == ActionState.SUCCEEDED
    assert _counts(fleet) == {"docs": 3, "index": 5, "enrich": 0, "policy": 2}
    assert {h.restore_rule for h in result.incident.holds.all()} == {RestoreRule.PREVIOUS}
    assert not class_is_paused(fleet["docs"])
    # The controller judges drift against what the restore set, not what the pause set.
    assert PoolControl.objects.get(workload_class=fleet["index"]).last_set_count == 5

    again = services.incident_mode_exit(actor=operator)
    assert not again.changed and again.incident == result.incident
    assert Action.objects.filter(kind=ActionKind.INCIDENT_EXIT).count() == 1
    # Re-running the finished exit's steps changes nothing either: restored holds are skipped.
    action.refresh_from_db()
    assert [s.result.get("instance_count") for s in action.steps.order_by("position")] == [0, 3, 5]


def test_exiting_without_any_incident_is_refused(db, operator):
    with pytest.raises(ApplicationError) as caught:
        services.incident_mode_exit(actor=operator)
    assert caught.value.code == "not_active"


def test_after_a_schedule_change_exit_restores_the_schedules_current_target(fleet, operator):
    """The rule: same bounds as when paused -> the count it had; bounds changed -> the schedule's
    target now (from a fresh backlog when there is one, else the old count clamped)."""
    _enter(operator)
    run_pending()
    # While paused, a window opens for two classes: docs gets max 2, indexing gets min 1 max 8.
    all_day = {"start_time": time(0), "end_time": time(0)}
    SchedulePolicyFactory(workload_class=fleet["docs"], name="quiet", min_instances=0, max_instances=2, **all_day)
    SchedulePolicyFactory(workload_class=fleet["index"], name="surge", min_instances=1, max_instances=8, **all_day)
    # indexing has a fresh backlog of 3000 (throughput 1/s, drain 300 s -> 10 instances, max 8).
    fresh_backlog(fleet["index"], backlog=3000, queue_age=900, now=timezone.now())
    services.incident_mode_exit(actor=operator)
    run_pending()
    assert _counts(fleet) == {"docs": 2, "index": 8, "enrich": 0, "policy": 2}
    holds = {h.workload_class.slug: h for h in PoolHold.objects.all()}
    assert holds["doc-render"].restore_rule == RestoreRule.SCHEDULE_TARGET
    assert "from 0-10 (baseline) to 0-2 (quiet)" in holds["doc-render"].restore_detail
    assert holds["indexing-pipeline"].restored_count == 8
    assert holds["batch-enrich"].restore_rule == RestoreRule.PREVIOUS


def test_expiry_exits_by_itself_and_extension_moves_it(fleet, operator):
    entered = _enter(operator, expires_in=timedelta(hours=1))
    run_pending()
    start = entered.incident.started_at
    services.incident_mode_extend(actor=operator, expires_in=timedelta(hours=3), now=start + timedelta(minutes=30))
    incident = IncidentMode.objects.get()
    assert incident.expires_at == start + timedelta(hours=3, minutes=30)
    assert {h.expires_at for h in incident.holds.all()} == {incident.expires_at}
    assert AuditEvent.objects.get(action="incident_mode.extend").changes["expires_at"][0] is not None

    assert services.pool_holds_expire(now=start + timedelta(hours=2)).incidents_expired == []
    summary = services.pool_holds_expire(now=start + timedelta(hours=3, minutes=31))
    assert summary.incidents_expired == [incident.pk]
    incident.refresh_from_db()
    assert incident.end_reason == "expired" and incident.ended_by is None
    [exit_action] = run_pending()
    assert exit_action.requested_by_label == "system" and exit_action.state == ActionState.SUCCEEDED
    assert _counts(fleet) == {"docs": 3, "index": 5, "enrich": 0, "policy": 2}
    assert AuditEvent.objects.filter(action="incident_mode.expire", actor=None).exists()
    # The tick is idempotent.
    assert services.pool_holds_expire(now=start + timedelta(hours=4)).incidents_expired == []


def test_a_class_paused_on_its_own_keeps_its_pause_through_an_incident(fleet, operator):
    own = pauses.pool_pause(workload_class=fleet["docs"], actor=operator, reason="bad deploy")
    run_pending()
    assert instances(fleet["docs"]) == 0 and own.hold.incident is None
    incident = _enter(operator).incident
    paused = sorted(incident.holds.values_list("workload_class__slug", flat=True))
    assert paused == ["batch-enrich", "indexing-pipeline"]
    assert AuditEvent.objects.get(action="incident_mode.enter").extra["already_paused"] == ["doc-render"]
    run_pending()
    services.incident_mode_exit(actor=operator)
    run_pending()
    assert instances(fleet["docs"]) == 0 and class_is_paused(fleet["docs"])  # still its own pause
    pauses.pool_resume(workload_class=fleet["docs"], actor=operator)
    run_pending()
    assert instances(fleet["docs"]) == 3


def test_pause_and_resume_one_class(fleet, operator):
    result = pauses.pool_pause(
        workload_class=fleet["policy"], actor=operator, reason="poison batch", expires_in=timedelta(minutes=30)
    )
    assert result.changed
    [pause] = run_pending()
    assert pause.kind == ActionKind.PAUSE and pause.workload_class == fleet["policy"]
    assert instances(fleet["policy"]) == 0 and class_is_paused(fleet["policy"])
    again = pauses.pool_pause(workload_class=fleet["policy"], actor=operator, reason="again")
    assert not again.changed and again.hold == result.hold

    resumed = pauses.pool_resume(workload_class=fleet["policy"], actor=operator)
    assert resumed.changed and resumed.hold.state == HoldState.RESTORING
    assert class_is_paused(fleet["policy"])  # until the pool is back
    [resume] = run_pending()
    assert resume.kind == ActionKind.RESUME and instances(fleet["policy"]) == 2
    assert not class_is_paused(fleet["policy"])
    retry = pauses.pool_resume(workload_class=fleet["policy"], actor=operator)
    assert not retry.changed and retry.hold.state == HoldState.RESTORED
    assert list(AuditEvent.objects.filter(actor=operator, action__startswith="pool.").values_list("action", flat=True))[
        ::-1
    ] == ["pool.pause", "pool.resume"]


def test_a_pause_expires_by_itself(fleet, operator):
    start = timezone.now()
    pauses.pool_pause(
        workload_class=fleet["index"], actor=operator, reason="x", expires_in=timedelta(minutes=10), now=start
    )
    run_pending()
    assert services.pool_holds_expire(now=start + timedelta(minutes=9)).holds_expired == []
    assert services.pool_holds_expire(now=start + timedelta(minutes=11)).holds_expired == ["indexing-pipeline"]
    run_pending()
    assert instances(fleet["index"]) == 5
    assert AuditEvent.objects.filter(action="pool.expire", actor=None).exists()


def test_one_class_can_be_resumed_out_of_an_incident(fleet, operator):
    _enter(operator)
    run_pending()
    pauses.pool_resume(workload_class=fleet["index"], actor=operator, reason="needed for the fix")
    run_pending()
    assert instances(fleet["index"]) == 5 and active_incident() is not None
    services.incident_mode_exit(actor=operator)
    [exit_action] = run_pending()
    assert exit_action.progress_total == 2  # the resumed class is not restored twice
    assert _counts(fleet) == {"docs": 3, "index": 5, "enrich": 0, "policy": 2}


def test_a_hold_past_the_subscriptions_retention_is_warned_about(fleet, operator):
    fleet["docs"].message_retention_seconds = 3600
    fleet["docs"].save()
    assert retention_warnings(expires_in=timedelta(hours=4)) == [
        "doc-render: the subscription keeps messages for 1 h but the pause may last 4 h; messages waiting longer "
        "are lost. Resume sooner or raise its retention."
    ]
    result = _enter(operator)
    assert len(result.warnings) == 1 and result.warnings[0].startswith("doc-render:")
    assert result.incident.holds.get(workload_class=fleet["docs"]).retention_warning == result.warnings[0]

    # Retention lowered during the incident: the tick warns once, with an audit event.
    fleet["index"].message_retention_seconds = 1800
    fleet["index"].save()
    now = result.incident.started_at + timedelta(minutes=1)
    assert services.pool_holds_expire(now=now).warned == ["indexing-pipeline"]
    assert services.pool_holds_expire(now=now).warned == []
    event = AuditEvent.objects.get(action="pool.retention_warning")
    assert event.workload_class_slug == "indexing-pipeline" and event.actor is None


def test_a_worker_crash_after_pausing_a_pool_does_not_lose_its_count(fleet, operator):
    """The worker dies after the pool went to 0 but before the step was recorded; the resumed
    action must still restore 5 later, not the 0 it would read now."""
    real = get_providers()

    class CrashAfterSet:
        def __init__(self, pools):
            self.pools, self.crashed = pools, False

        def get(self, spec):
            return self.pools.get(spec)

        def set_instances(self, spec, count, *, reason):
            state = self.pools.set_instances(spec, count, reason=reason)
            if spec.slug == "indexing-pipeline" and not self.crashed:
                self.crashed = True
                raise SystemExit  # the process is killed here
            return state

    set_providers(Providers(queue=None, pools=CrashAfterSet(real.pools), metrics=None, name="crashing"))
    try:
        entered = _enter(operator)
        with pytest.raises(SystemExit):
            action_run(action_id=entered.incident.enter_action_id)
        assert instances(fleet["index"]) == 0
        Action.objects.filter(pk=entered.incident.enter_action_id).update(heartbeat_at=timezone.now() - STALE_AFTER * 2)
        assert actions_resume(now=timezone.now()) == [entered.incident.enter_action_id]
        done = action_run(action_id=entered.incident.enter_action_id)
    finally:
        set_providers(None)
    assert done.state == ActionState.SUCCEEDED and done.attempts == 2
    assert PoolHold.objects.get(workload_class=fleet["index"]).previous_count == 5
    services.incident_mode_exit(actor=operator)
    run_pending()
    assert _counts(fleet) == {"docs": 3, "index": 5, "enrich": 0, "policy": 2}


def test_exit_while_the_enter_action_is_still_pending_cancels_it_and_touches_nothing(fleet, operator):
    _enter(operator)
    services.incident_mode_exit(actor=operator)
    enter = Action.objects.get(kind=ActionKind.INCIDENT_ENTER)
    assert enter.state == ActionState.CANCELLED
    [exit_action] = run_pending()
    assert exit_action.state == ActionState.SUCCEEDED
    assert _counts(fleet) == {"docs": 3, "index": 5, "enrich": 0, "policy": 2}
    assert {h.restore_rule for h in PoolHold.objects.all()} == {RestoreRule.NOTHING}


def test_a_restore_waits_while_the_pause_is_still_running(fleet, operator):
    entered = _enter(operator)
    # A worker holds the enter action (it is running); exit requests its cancel and must wait.
    Action.objects.filter(pk=entered.incident.enter_action_id).update(
        state=ActionState.RUNNING, heartbeat_at=timezone.now(), claimed_by="w1"
    )
    services.incident_mode_exit(actor=operator)
    exit_action = Action.objects.get(kind=ActionKind.INCIDENT_EXIT)
    with pytest.raises(ProviderError) as caught:
        action_run(action_id=exit_action.pk)
    assert caught.value.code == "PAUSE_IN_PROGRESS"
    exit_action.refresh_from_db()
    assert exit_action.state == ActionState.PENDING and "still being paused" in exit_action.error


def test_a_pool_that_does_not_exist_fails_its_pause_and_is_not_counted_as_paused(db, operator):
    from tests.factories import WorkloadClassFactory

    pooled_class("doc-render", instances=2)
    missing = WorkloadClassFactory(slug="never-deployed", tier="deferrable")
    _enter(operator)
    [enter] = run_pending()
    assert enter.state == ActionState.PARTIALLY_FAILED
    assert enter.error == "1 of 2 pools paused; never-deployed: workerPools/never-deployed not found"
    assert PoolHold.objects.get(workload_class=missing).state == HoldState.FAILED
    assert not class_is_paused(missing)
    services.incident_mode_exit(actor=operator)
    [exit_action] = run_pending()
    assert exit_action.state == ActionState.SUCCEEDED and exit_action.progress_total == 1


def test_ingestion_sheds_load_while_a_class_is_paused(db, operator, client_as):
    shedding = pooled_class("doc-render", instances=1, tier="standard", shed_load_when_paused=True)
    pauses.pool_pause(workload_class=shedding, actor=operator, reason="x")
    client = client_as(operator)
    response = client.post("/api/v1/classes/doc-render/events", {}, format="json")
    assert response.status_code == 503 and response["Retry-After"] == "300"
    run_pending()
    pauses.pool_resume(workload_class=shedding, actor=operator)
    run_pending()
    assert client.post("/api/v1/classes/doc-render/events", {}, format="json").status_code == 400


def test_resuming_one_class_before_the_incident_paused_it_leaves_the_others_to_be_paused(fleet, operator):
    entered = _enter(operator)
    pauses.pool_resume(workload_class=fleet["index"], actor=operator)
    enter = Action.objects.get(pk=entered.incident.enter_action_id)
    assert enter.state == ActionState.PENDING and not enter.cancel_requested
    run_pending()
    assert _counts(fleet) == {"docs": 0, "index": 5, "enrich": 0, "policy": 2}
    hold = PoolHold.objects.get(workload_class=fleet["index"])
    assert hold.state == HoldState.RESTORED and hold.restore_rule == RestoreRule.NOTHING


def test_a_class_deleted_during_the_exit_does_not_stop_the_others_restoring(fleet, operator):
    from workloads.services.actions import _plan, handler_for

    _enter(operator)
    run_pending()
    services.incident_mode_exit(actor=operator)
    exit_action = Action.objects.get(kind=ActionKind.INCIDENT_EXIT)
    _plan(exit_action, handler_for(exit_action.kind))  # a worker planned it, then the class went away
    fleet["enrich"].delete()
    done = action_run(action_id=exit_action.pk)
    assert done.state == ActionState.SUCCEEDED
    assert {fleet[name].slug: instances(fleet[name]) for name in ("docs", "index")} == {
        "doc-render": 3,
        "indexing-pipeline": 5,
    }
    assert {"skipped": "the class was deleted"} in [s.result for s in done.steps.all()]


def test_the_banner_shows_the_real_incident_on_every_page_until_exit(fleet, operator, viewer, client):
    _enter(operator, reason="Database failover in europe-west1", ticket="INC-4711")
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert "Incident mode is active" in html and "otto-operator" in html
    assert "Database failover in europe-west1" in html and "INC-4711" in html
    services.incident_mode_exit(actor=operator)
    assert "Incident mode is active" not in client.get("/").content.decode()
