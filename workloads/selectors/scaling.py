"""Read-side views of the scaling controller: the backlog it sizes pools from, the 7-day preview of
a class's targets by schedule, and its pool-control state (drift, last decision)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Q, Sum

from workloads.models import ClassTelemetry, MetricRollup, PoolControl, Resolution, WorkloadClass
from workloads.scaling import desired_instances
from workloads.scheduling import InstanceBounds, instance_bounds, next_bounds_change

MAX_PREVIEW_HOURS = 14 * 24

# A pool that completed or failed work this recently keeps one instance even when a sample reads
# an empty backlog (see workloads.scaling).
RECENT_WORK_WINDOW = timedelta(minutes=5)
# How far back the worker-health check looks for the newest report: longer than any verdict needs
# (a job's timeout is at most an hour), short enough to stay on the rollups' index.
REPORT_LOOKBACK = timedelta(hours=2)


@dataclass(frozen=True)
class Backlog:
    messages: float | None
    queue_age_seconds: float | None
    recent_work: float | None = None  # completed + failed over RECENT_WORK_WINDOW


def latest_backlog(workload_class: WorkloadClass, *, now: datetime) -> Backlog:
    """The backlog and queue age of the latest poll, or unknown when telemetry is stale: sizing a
    pool from a backlog read half an hour ago would be worse than leaving it alone."""
    telemetry = ClassTelemetry.objects.filter(workload_class=workload_class).first()
    if telemetry is None or telemetry.newest_sample_at is None:
        return Backlog(None, None)
    if now - telemetry.newest_sample_at > timedelta(seconds=settings.TELEMETRY_STALE_AFTER_SECONDS):
        return Backlog(None, None)
    since = now - RECENT_WORK_WINDOW
    recent = MetricRollup.objects.filter(
        workload_class=workload_class, resolution=Resolution.MINUTE, bucket_start__gte=since
    ).aggregate(work=Sum("completed") + Sum("failed"))["work"]
    return Backlog(telemetry.backlog, telemetry.oldest_unacked_age_seconds, float(recent or 0))


def last_report_at(workload_class: WorkloadClass, *, now: datetime) -> datetime | None:
    """When the class's workers last reported work (completions or failures), to the minute: the
    end of the newest minute rollup that counted any, or None within REPORT_LOOKBACK."""
    start = MetricRollup.objects.filter(
        Q(completed__gt=0) | Q(failed__gt=0),
        workload_class=workload_class,
        resolution=Resolution.MINUTE,
        bucket_start__gte=now - REPORT_LOOKBACK,
    ).aggregate(newest=Max("bucket_start"))["newest"]
    return None if start is None else min(now, start + timedelta(minutes=1))


@dataclass(frozen=True)
class PreviewPoint:
    at: datetime
    window: str  # "baseline" or the schedule window's name
    min_instances: int
    max_instances: int
    target: int


@dataclass(frozen=True)
class SchedulePreview:
    workload_class: WorkloadClass
    start: datetime
    end: datetime
    backlog: float
    hours: list[PreviewPoint]  # one per hour from `start`
    changes: list[PreviewPoint]  # every instant in (start, end) where min or max changes


def _point(workload_class: WorkloadClass, at: datetime, bounds: InstanceBounds, backlog: float) -> PreviewPoint:
    target = desired_instances(
        backlog=backlog,
        throughput_per_instance=workload_class.throughput_per_instance,
        drain_target_seconds=workload_class.drain_target_seconds,
        bounds=bounds,
    )
    return PreviewPoint(at, bounds.source, bounds.min_instances, bounds.max_instances, target)


def schedule_preview(
    workload_class: WorkloadClass, start: datetime, hours: int = 168, *, backlog: float = 0.0
) -> SchedulePreview:
    """The targets the controller would set over the next `hours` by schedule alone, for an assumed
    constant backlog (0: the schedule's minimum): per hour, and at each exact change point (windows
    open and close on the minute, in their own time zones)."""
    if not 1 <= hours <= MAX_PREVIEW_HOURS:
        raise ValueError(f"hours must be between 1 and {MAX_PREVIEW_HOURS}")
    policies = list(workload_class.schedules.all())
    end = start + timedelta(hours=hours)
    points = [
        _point(workload_class, at, instance_bounds(workload_class, policies, at), backlog)
        for at in (start + timedelta(hours=i) for i in range(hours))
    ]
    changes = []
    at = start
    while True:
        change = next_bounds_change(workload_class, policies, at, horizon=end - at)
        if change is None or change.at >= end:
            break
        changes.append(_point(workload_class, change.at, change.bounds, backlog))
        at = change.at
    return SchedulePreview(workload_class, start, end, backlog, points, changes)


def pool_control_of(workload_class: WorkloadClass) -> PoolControl | None:
    return PoolControl.objects.filter(workload_class=workload_class).select_related("takeover_by").first()
