"""Read-side views of the scaling controller: the backlog it sizes pools from, the 7-day preview of
a class's targets by schedule, and its pool-control state (drift, last decision)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Q, Sum

from workloads.domain.scaling import desired_instances
from workloads.domain.scheduling import InstanceBounds, instance_bounds, next_bounds_change
from workloads.models import ClassTelemetry, MetricRollup, PoolControl, Resolution, WorkloadClass

MAX_PREVIEW_HOURS = 14 * 24

# A pool that completed or failed work this recently keeps one instance even when a sample reads
# an empty backlog (see workloads.domain.scaling).
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
    return latest_backlogs([workload_class.pk], now=now)[workload_class.pk]


def latest_backlogs(class_ids: list[int], *, now: datetime) -> dict[int, Backlog]:
    """latest_backlog of each class, in two queries whatever their number (the scaling controller
    reads every class each tick): the live rows, and the recent minutes' work grouped by class."""
    stale_before = now - timedelta(seconds=settings.TELEMETRY_STALE_AFTER_SECONDS)
    fresh = {
        row.workload_class_id: row
        for row in ClassTelemetry.objects.filter(
            workload_class_id__in=class_ids, newest_sample_at__isnull=False, newest_sample_at__gte=stale_before
        )
    }
    recent = {}
    if fresh:
        recent = dict(
            MetricRollup.objects.filter(
                workload_class_id__in=list(fresh),
                resolution=Resolution.MINUTE,
                bucket_start__gte=now - RECENT_WORK_WINDOW,
            )
            .order_by()
            .values("workload_class_id")
            .annotate(work=Sum("completed") + Sum("failed"))
            .values_list("workload_class_id", "work")
        )
    unknown = Backlog(None, None)
    return {
        pk: Backlog(fresh[pk].backlog, fresh[pk].oldest_unacked_age_seconds, float(recent.get(pk) or 0))
        if pk in fresh
        else unknown
        for pk in class_ids
    }


def last_report_at(workload_class: WorkloadClass, *, now: datetime) -> datetime | None:
    """When the class's workers last reported work (completions or failures), to the minute: the
    end of the newest minute rollup that counted any, or None within REPORT_LOOKBACK."""
    return last_reports_at([workload_class.pk], now=now)[workload_class.pk]


def last_reports_at(class_ids: list[int], *, now: datetime) -> dict[int, datetime | None]:
    """last_report_at of each class in one grouped query."""
    newest = dict(
        MetricRollup.objects.filter(
            Q(completed__gt=0) | Q(failed__gt=0),
            workload_class_id__in=class_ids,
            resolution=Resolution.MINUTE,
            bucket_start__gte=now - REPORT_LOOKBACK,
        )
        .order_by()
        .values("workload_class_id")
        .annotate(newest=Max("bucket_start"))
        .values_list("workload_class_id", "newest")
    )
    return {pk: None if pk not in newest else min(now, newest[pk] + timedelta(minutes=1)) for pk in class_ids}


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
        _point(workload_class, at, instance_bounds(workload_class.baseline_bounds, policies, at), backlog)
        for at in (start + timedelta(hours=i) for i in range(hours))
    ]
    changes = []
    at = start
    while True:
        change = next_bounds_change(workload_class.baseline_bounds, policies, at, horizon=end - at)
        if change is None or change.at >= end:
            break
        changes.append(_point(workload_class, change.at, change.bounds, backlog))
        at = change.at
    return SchedulePreview(workload_class, start, end, backlog, points, changes)


def pool_control_of(workload_class: WorkloadClass) -> PoolControl | None:
    return PoolControl.objects.filter(workload_class=workload_class).select_related("takeover_by").first()
