"""Worker health, the pure verdict (workloads.domain.health): unhealthy when instances run and a backlog
waits but no worker reports arrive, with its cause from the evidence; and how the controller's
decision reads health and queue age (workloads.domain.scaling)."""

from datetime import UTC, datetime, timedelta

from workloads.domain.health import NO_HANDLER_EXIT_CODE, HealthInputs, pool_health
from workloads.domain.scaling import DecisionInputs, scaling_decision
from workloads.domain.scheduling import InstanceBounds

T0 = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=60)


def _inputs(**overrides) -> HealthInputs:
    values = dict(
        now=T0,
        instances=2,
        backlog=500.0,
        last_report_at=None,
        busy_since=T0 - timedelta(minutes=30),
        report_interval=INTERVAL,
        job_timeout=timedelta(seconds=30),
        poll_lag=timedelta(seconds=0),
        exits_observed=True,
    )
    values.update(overrides)
    return HealthInputs(**values)


def test_a_pool_that_reports_is_healthy():
    verdict = pool_health(_inputs(last_report_at=T0 - timedelta(seconds=50)))
    assert verdict.state == "healthy" and verdict.detail == "last worker report 50 s ago"


def test_no_instances_or_no_backlog_is_healthy_and_no_data_is_unknown():
    assert pool_health(_inputs(instances=0)).state == "healthy"
    assert pool_health(_inputs(backlog=0.0)).state == "healthy"
    assert pool_health(_inputs(backlog=None)).state == "unknown"


def test_workers_that_exit_without_a_handler_are_flagged_after_one_report_interval():
    exits = dict(exits_in_row=4, last_exit_at=T0 - timedelta(seconds=5), last_exit_code=NO_HANDLER_EXIT_CODE)
    # Busy for less than one interval: no verdict yet, the workers may still be starting.
    assert pool_health(_inputs(busy_since=T0 - timedelta(seconds=30), **exits)).state == "healthy"
    verdict = pool_health(_inputs(busy_since=T0 - timedelta(seconds=60), **exits))
    assert (verdict.state, verdict.cause) == ("unhealthy", "no_handler")
    assert verdict.detail.startswith("no handler registered: 4 worker exits in a row, the last 5 s ago (exit code 78)")
    assert "2 instances, backlog 500, last worker report never" in verdict.detail


def test_other_exits_are_a_crash_loop_but_not_once_reports_came_after_them():
    crash = dict(exits_in_row=3, last_exit_at=T0 - timedelta(seconds=10), last_exit_code=1)
    verdict = pool_health(_inputs(**crash))
    assert (verdict.state, verdict.cause) == ("unhealthy", "crash_looping")
    assert "exit code 1" in verdict.detail
    # A worker that crashed a few times and then worked is fine.
    assert pool_health(_inputs(last_report_at=T0 - timedelta(seconds=5), **crash)).state == "healthy"
    # A single exit is no loop.
    assert pool_health(_inputs(**{**crash, "exits_in_row": 1}, busy_since=T0 - timedelta(seconds=90))).state == (
        "healthy"
    )


def test_running_workers_that_settle_nothing_are_stuck_only_after_a_job_could_have_timed_out():
    long_jobs = dict(job_timeout=timedelta(minutes=10))
    report = T0 - timedelta(minutes=9)
    assert pool_health(_inputs(last_report_at=report, **long_jobs)).state == "healthy"
    verdict = pool_health(_inputs(last_report_at=T0 - timedelta(minutes=11), **long_jobs))
    assert (verdict.state, verdict.cause) == ("unhealthy", "stuck")
    assert verdict.detail.startswith("stuck: workers run but settled nothing for 11 min")
    # Short jobs: two report intervals of silence are enough.
    assert pool_health(_inputs(last_report_at=T0 - timedelta(seconds=121))).cause == "stuck"


def test_idle_workers_in_front_of_messages_backing_off_are_not_stuck_before_the_next_attempt_is_due():
    backing_off = dict(max_backoff=timedelta(minutes=5), last_report_at=T0 - timedelta(minutes=6))
    assert pool_health(_inputs(**backing_off)).state == "healthy"  # 5 min + 30 s + 60 s not yet over
    assert pool_health(_inputs(**{**backing_off, "last_report_at": T0 - timedelta(minutes=7)})).cause == "stuck"


def test_where_exits_are_not_seen_silence_reads_as_no_reports_and_waits_for_the_poll_lag():
    cloud = dict(exits_observed=False, poll_lag=timedelta(seconds=120), last_report_at=T0 - timedelta(seconds=200))
    assert pool_health(_inputs(**cloud)).state == "healthy"  # within 2 intervals + the poll's lag
    verdict = pool_health(_inputs(**{**cloud, "last_report_at": T0 - timedelta(seconds=241)}))
    assert (verdict.state, verdict.cause) == ("unhealthy", "no_reports")
    assert "(crash-looping, stuck or no handler)" in verdict.detail


# --- The controller's decision reads health and queue age -------------------------------------------------
def _decision(**overrides):
    values = dict(
        now=T0,
        current=2,
        bounds=InstanceBounds(0, 10, "baseline"),
        backlog=1_000.0,
        queue_age_seconds=30.0,
        throughput_per_instance=1.0,
        drain_target_seconds=100,
        recent_work=500.0,
    )
    values.update(overrides)
    return scaling_decision(DecisionInputs(**values))


def test_an_unhealthy_pool_is_not_scaled_up_and_the_reason_says_why():
    decision = _decision(unhealthy="no handler")
    assert (decision.change, decision.target, decision.blocked_by) == (False, 2, "unhealthy")
    assert decision.reason == (
        "backlog 1k, queue age 30 s (baseline: max 10); not scaling up: the pool is unhealthy (no handler), "
        "more instances would not help"
    )
    assert _decision().target == 10  # healthy: the backlog scales it


def test_an_old_queue_with_idle_workers_is_waiting_out_retries_and_gets_no_instances():
    decision = _decision(backlog=150.0, queue_age_seconds=900.0, recent_work=20.0)
    assert decision.target == 2 and not decision.change
    assert "queue age 900 s is over the 100 s drain target but the workers are idle (3% of capacity)" in (
        decision.reason
    )
    assert "more instances would not help" in decision.reason


def test_an_old_queue_with_busy_workers_gets_one_more_instance():
    decision = _decision(backlog=150.0, queue_age_seconds=900.0, recent_work=540.0)
    assert (decision.change, decision.target) == (True, 3)
    assert decision.reason.endswith("with the workers busy (90% of capacity): one more instance")
