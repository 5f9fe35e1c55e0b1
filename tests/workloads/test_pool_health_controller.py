"""Worker health as the scaling controller sees it, on the local provider: the fleet's exit
evidence and the workers' reports (minute rollups) make a pool unhealthy or healthy again, the
verdict is audited, shown in the scaling API and stops the controller from adding instances; and
the manual instance-count override (a hold at a count), through the API, restored at expiry."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from tests.workloads.pools import fresh_backlog, instances, pooled_class, run_pending
from workloads.domain.health import NO_HANDLER_EXIT_CODE
from workloads.models import Action, ActionKind, AuditEvent, MetricRollup, PoolControl, PoolHold, Resolution
from workloads.providers.local.models import LocalWorkerPool
from workloads.services import incidents
from workloads.services.scaling import scaling_controller_tick

# make run's figures: reports every 10 s, polls of the minute under way every 10 s.
FAST = dict(WORKER_REPORT_INTERVAL_SECONDS=10, TELEMETRY_POLL_INTERVAL_SECONDS=10, TELEMETRY_POLL_CURRENT_MINUTE=True)


@pytest.fixture
def docs(db):
    return pooled_class(
        "doc-render", instances=2, tier="standard", throughput_per_instance=1.0, drain_target_seconds=100
    )


def _workers_exit(workload_class, *, times: int, code: int, at):
    LocalWorkerPool.objects.filter(name=workload_class.worker_pool).update(
        exits_in_row=times, last_exit_at=at, last_exit_code=code
    )


def _report(workload_class, *, minute, completed: int):
    MetricRollup.objects.create(
        workload_class=workload_class,
        resolution=Resolution.MINUTE,
        bucket_start=minute,
        completed=completed,
        fetched_at=minute,
    )


@override_settings(**FAST)
def test_workers_without_a_handler_make_the_pool_unhealthy_and_the_controller_stops_adding_instances(
    docs, viewer, client_as
):
    t0 = timezone.now().replace(microsecond=0)
    fresh_backlog(docs, backlog=500, queue_age=400, now=t0)
    _workers_exit(docs, times=3, code=NO_HANDLER_EXIT_CODE, at=t0)
    scaling_controller_tick(now=t0)
    run_pending()  # the first tick scales for the backlog: nothing is known against the pool yet
    assert PoolControl.objects.get(workload_class=docs).health == "healthy"

    # Within two report intervals (one, plus the poll's lag) the evidence stands: no report since
    # the work arrived, and exits.
    t1 = t0 + timedelta(seconds=20)
    fresh_backlog(docs, backlog=2_000, queue_age=420, now=t1)
    _workers_exit(docs, times=5, code=NO_HANDLER_EXIT_CODE, at=t1)
    summary = scaling_controller_tick(now=t1)
    control = PoolControl.objects.get(workload_class=docs)
    assert (control.health, control.health_cause, control.health_since) == ("unhealthy", "no_handler", t1)
    assert control.health_detail.startswith("no handler registered: 5 worker exits in a row")
    assert summary.scaled == {}
    assert "not scaling up: the pool is unhealthy (no handler), more instances would not help" in (
        control.last_decision
    )
    assert "[unhealthy]" in control.last_decision
    event = AuditEvent.objects.get(action="pool.unhealthy")
    assert event.actor is None and event.workload_class_slug == "doc-render"
    assert event.extra["cause"] == "no_handler"

    body = client_as(viewer).get("/api/v1/classes/doc-render/scaling/").json()
    assert body["health"] == "unhealthy" and body["health_cause"] == "no_handler"
    assert body["health_detail"] == control.health_detail

    # A handler is deployed: the workers report again and the pool recovers.
    t2 = t1 + timedelta(seconds=30)
    _report(docs, minute=t2.replace(second=0), completed=40)
    fresh_backlog(docs, backlog=1_500, queue_age=200, now=t2)
    scaling_controller_tick(now=t2)
    control.refresh_from_db()
    assert control.health == "healthy" and control.health_cause == ""
    assert AuditEvent.objects.get(action="pool.recovered").extra["health"] == "healthy"


@override_settings(**FAST)
def test_running_workers_that_settle_nothing_are_stuck(docs):
    t0 = timezone.now().replace(microsecond=0)
    docs.timeout_tier, docs.timeout_seconds = "custom", 20
    docs.min_backoff_seconds, docs.max_backoff_seconds = 1, 10
    docs.save()
    fresh_backlog(docs, backlog=10, queue_age=30, now=t0)
    scaling_controller_tick(now=t0)
    t1 = t0 + timedelta(seconds=49)  # the longest backoff, the timeout, an interval and the poll's lag: 50 s
    fresh_backlog(docs, backlog=10, queue_age=69, now=t1)
    scaling_controller_tick(now=t1)
    assert PoolControl.objects.get(workload_class=docs).health == "healthy"
    t1 += timedelta(seconds=1)
    scaling_controller_tick(now=t1)
    control = PoolControl.objects.get(workload_class=docs)
    assert (control.health, control.health_cause) == ("unhealthy", "stuck")


def test_an_override_holds_the_pool_at_a_count_and_is_restored_at_expiry(docs, operator, client_as):
    client = client_as(operator)
    refused = client.post("/api/v1/classes/doc-render/pause/", {"reason": "load test", "instances": 11}, format="json")
    assert refused.status_code == 400 and refused.json()["type"] == "invalid_instances"

    response = client.post(
        "/api/v1/classes/doc-render/pause/",
        {"reason": "load test", "instances": 5, "expires_in_minutes": 30},
        format="json",
    )
    assert response.status_code == 202, response.content
    hold = response.json()["hold"]
    assert hold["hold_count"] == 5 and hold["retention_warning"] == ""
    assert Action.objects.get(kind=ActionKind.OVERRIDE).target == "doc-render worker pool"
    run_pending()
    assert instances(docs) == 5
    event = AuditEvent.objects.get(action="pool.override")
    assert event.actor == operator and event.extra["instances"] == 5

    now = timezone.now()
    fresh_backlog(docs, backlog=0, queue_age=0, now=now)
    assert scaling_controller_tick(now=now).skipped == {"doc-render": "held"}
    control = PoolControl.objects.get(workload_class=docs)
    assert control.last_target == 5
    assert control.last_decision.startswith("held at 5 by the override (otto-operator) until ")

    incidents.pool_holds_expire(now=now + timedelta(minutes=31))
    run_pending()
    assert instances(docs) == 2  # the count it had
    assert PoolHold.objects.get().restore_rule == "previous"
