"""Worker health of each class's pool: judged on every scaling-controller tick by the pure
`workloads.domain.health.pool_health`, kept on PoolControl with its evidence (shown on the overview, the
class page and the scaling API), and audited when a pool turns unhealthy or recovers."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from workloads.domain import health as health_rules
from workloads.models import PoolControl, WorkloadClass
from workloads.providers.base import PoolState
from workloads.selectors.scaling import Backlog, last_report_at
from workloads.services.audit import audit_event_record


def poll_lag() -> timedelta:
    """How late a worker report can reach the rollups the check reads: up to one poll interval,
    plus the minute under way when polls read ended minutes only."""
    seconds = settings.TELEMETRY_POLL_INTERVAL_SECONDS
    if not settings.TELEMETRY_POLL_CURRENT_MINUTE:
        seconds += 60
    return timedelta(seconds=seconds)


# The PoolControl fields a verdict sets (pool_health_judge), for whoever saves them.
HEALTH_FIELDS = ("health", "health_cause", "health_detail", "health_since", "health_checked_at", "busy_since")


def pool_health_record(
    *, workload_class: WorkloadClass, control: PoolControl, state: PoolState, backlog: Backlog, now: datetime
) -> health_rules.Health:
    """Judge the pool from its state, backlog and reports; store the verdict on `control`."""
    verdict = pool_health_judge(
        workload_class=workload_class,
        control=control,
        state=state,
        backlog=backlog,
        now=now,
        last_report=last_report_at(workload_class, now=now),
    )
    PoolControl.objects.filter(pk=control.pk).update(**{name: getattr(control, name) for name in HEALTH_FIELDS})
    return verdict


def pool_health_judge(
    *,
    workload_class: WorkloadClass,
    control: PoolControl,
    state: PoolState,
    backlog: Backlog,
    now: datetime,
    last_report: datetime | None,
) -> health_rules.Health:
    """The verdict, set on `control` in memory (HEALTH_FIELDS; the caller saves them: the scaling
    controller saves every class's in one statement) and audited when a pool turns unhealthy or
    recovers. `last_report`: last_report_at of the class."""
    if backlog.messages is None:
        busy_since = control.busy_since  # unknown backlog: neither starts nor ends a busy spell
    elif state.instance_count > 0 and backlog.messages > 0:
        busy_since = control.busy_since or now
    else:
        busy_since = None
    verdict = health_rules.pool_health(
        health_rules.HealthInputs(
            now=now,
            instances=state.instance_count,
            backlog=backlog.messages,
            last_report_at=last_report,
            busy_since=busy_since,
            report_interval=timedelta(seconds=settings.WORKER_REPORT_INTERVAL_SECONDS),
            job_timeout=workload_class.timeout,
            max_backoff=timedelta(seconds=workload_class.max_backoff_seconds or 0),
            poll_lag=poll_lag(),
            exits_observed=state.exits_observed,
            exits_in_row=state.exits_in_row,
            last_exit_at=state.last_exit_at,
            last_exit_code=state.last_exit_code,
        )
    )
    was = control.health
    changed = verdict.state != was or verdict.cause != control.health_cause
    control.health, control.health_cause, control.health_detail = verdict.state, verdict.cause, verdict.detail[:255]
    control.health_checked_at, control.busy_since = now, busy_since
    if changed:
        control.health_since = now
    if changed and health_rules.UNHEALTHY in (verdict.state, was):
        audit_event_record(
            actor=None,
            action="pool.unhealthy" if verdict.state == health_rules.UNHEALTHY else "pool.recovered",
            target=workload_class,
            target_repr=f"{workload_class.slug} worker pool",
            workload_class_slug=workload_class.slug,
            extra={"health": verdict.state, "cause": verdict.cause, "detail": verdict.detail},
        )
    return verdict
