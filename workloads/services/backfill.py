"""Backfill: read a class's past from Cloud Monitoring into its rollups, so evidence about an
observed runtime does not wait for new history (issue 20; docs/migration.md section 2).

A backfill is an action (`backfill`, progress on /actions/<id>/, audited by the engine): one step
per day of the window, each reading every polled metric and the runtime's own metrics of that day
for the class (workloads.services.polling.collect_cells, the poll's own reading, one call per
metric), upserting its minute rollups and recomputing the hours they touch. Upserts replace a
minute's values with what Monitoring holds, so a second backfill of the same days, or a step run
twice, never counts anything twice.

The window is limited to what Monitoring keeps (RUNTIME_BACKFILL_MAX_DAYS, 6 weeks) and to the
hourly rollups' retention, and ends where the poll's own window begins (the poll owns its last
minutes: it advances the running counters from them). Days older than the minute retention are
folded into hourly rows by the next downsample, as polled minutes are.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workloads.domain.windows import ceil_hour, floor_hour, floor_minute
from workloads.errors import ApplicationError
from workloads.models import Action, ActionKind, ActionStep, ClassTelemetry, MetricRollup, Resolution, WorkloadClass
from workloads.models.actions import FINAL_ACTION_STATES
from workloads.providers import get_providers
from workloads.providers.base import ProviderError, RuntimeMetric
from workloads.providers.specs import metric_target
from workloads.runtimes import reads_runtime_metrics
from workloads.services.actions import ActionHandler, PlannedStep, action_request, register_handler
from workloads.services.polling import collect_cells, minute_rollups_upsert
from workloads.services.rollups import hourly_rollups_refold
from workloads.services.slo_thresholds import Thresholds, slo_thresholds

CHUNK = timedelta(days=1)


def backfill_bounds(*, now: datetime) -> tuple[datetime, datetime]:
    """The earliest start and the latest end a backfill may have at `now`."""
    days = min(settings.RUNTIME_BACKFILL_MAX_DAYS, settings.TELEMETRY_HOUR_RETENTION_DAYS)
    earliest = floor_minute(now - timedelta(days=days))
    latest = floor_minute(now) - timedelta(minutes=settings.TELEMETRY_POLL_WINDOW_MINUTES)
    return earliest, latest


def backfill_window(
    *, start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime, list[str]]:
    """The window actually read, aligned to the rollup step (minutes) and clamped to the bounds,
    with a note for each clamp; ApplicationError (400) when nothing is left."""
    earliest, latest = backfill_bounds(now=now)
    notes = []
    start = floor_minute(start) if start else earliest
    end = floor_minute(end) if end else latest
    if start < earliest:
        notes.append(
            f"start moved to {earliest.isoformat()}: Monitoring keeps {settings.RUNTIME_BACKFILL_MAX_DAYS} days"
        )
        start = earliest
    if end > latest:
        notes.append(f"end moved to {latest.isoformat()}: the poll reads the last minutes itself")
        end = latest
    if start >= end:
        raise ApplicationError(
            f"Nothing to backfill between {start.isoformat()} and {end.isoformat()}: a backfill reads from "
            f"{earliest.isoformat()} (Monitoring's retention) to {latest.isoformat()} (where the poll begins).",
            code="empty_backfill_window",
            status=400,
        )
    return start, end, notes


def backfill_request(
    *,
    workload_class: WorkloadClass,
    actor,
    start: datetime | None = None,
    end: datetime | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> Action:
    """Start a backfill of the class over [start, end) (default: all Monitoring keeps). A backfill
    of the class still pending or running is returned instead of a second one."""
    now = now or timezone.now()
    start, end, notes = backfill_window(start=start, end=end, now=now)
    with transaction.atomic():
        running = (
            Action.objects.select_for_update()
            .filter(kind=ActionKind.BACKFILL, workload_class=workload_class)
            .exclude(state__in=FINAL_ACTION_STATES)
            .order_by("-pk")
            .first()
        )
        if running is not None:
            return running
        return action_request(
            kind=ActionKind.BACKFILL,
            actor=actor,
            reason=reason or "backfill from Cloud Monitoring",
            workload_class=workload_class,
            target=f"{workload_class.slug} {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
            parameters={"start": start.isoformat(), "end": end.isoformat(), "notes": notes},
        )


def publishes_own_metrics(workload_class: WorkloadClass) -> bool:
    """An observed runtime that Monitoring has metrics of (not Celery or a custom runtime, whose
    past the poll only knows from the time it began), named so its series can be found."""
    return bool(workload_class.runtime_resource) and any(
        reads_runtime_metrics(workload_class.runtime, metric.value) for metric in RuntimeMetric
    )


def backfill_on_register(*, workload_class: WorkloadClass, actor) -> Action | None:
    """A class registered on a runtime that publishes its own metrics gets its past read at once."""
    if not settings.RUNTIME_BACKFILL_ON_REGISTER or not publishes_own_metrics(workload_class):
        return None
    return backfill_request(workload_class=workload_class, actor=actor, reason="class registered")


def latest_backfill(workload_class: WorkloadClass) -> Action | None:
    return Action.objects.filter(kind=ActionKind.BACKFILL, workload_class=workload_class).order_by("-pk").first()


def history_missing(workload_class: WorkloadClass, *, start: datetime, end: datetime) -> bool:
    """Whether the class has hourly rollups (kept in step with its minutes) for less than half of
    [start, end): the comparison and plan screens then offer a backfill."""
    hours = max(1, int((end - start).total_seconds() // 3600))
    covered = MetricRollup.objects.filter(
        workload_class=workload_class, resolution=Resolution.HOUR, bucket_start__gte=start, bucket_start__lt=end
    ).count()
    return covered < hours / 2


def _thresholds(workload_class: WorkloadClass) -> dict[int, Thresholds]:
    # As the poll does: rows are judged against the thresholds the class's rows were judged with.
    state = ClassTelemetry.objects.filter(workload_class=workload_class).first()
    if state is not None:
        return {workload_class.pk: Thresholds(state.queue_age_threshold_seconds, state.latency_threshold_seconds)}
    return {workload_class.pk: slo_thresholds([workload_class.pk]).get(workload_class.pk, Thresholds())}


class BackfillHandler(ActionHandler):
    """One step per day of the window: read it from Monitoring, upsert its minutes, refold its
    hours. A metric that failed fails the step (after what did arrive is kept): transient
    failures retry the action, permanent ones say which metric and why."""

    kind = ActionKind.BACKFILL

    def plan(self, action: Action) -> list[PlannedStep]:
        start = datetime.fromisoformat(action.parameters["start"])
        end = datetime.fromisoformat(action.parameters["end"])
        steps = []
        while start < end:
            chunk_end = min(end, start + CHUNK)
            steps.append(
                PlannedStep(
                    key=f"{start:%Y-%m-%d %H:%M}",
                    payload={"start": start.isoformat(), "end": chunk_end.isoformat()},
                )
            )
            start = chunk_end
        return steps

    def run_step(self, action: Action, step: ActionStep) -> dict:
        workload_class = WorkloadClass.objects.get(pk=action.workload_class_id)
        start = datetime.fromisoformat(step.payload["start"])
        end = datetime.fromisoformat(step.payload["end"])
        now = timezone.now()
        runs = []
        cells, newest = collect_cells(
            get_providers().metrics,
            [metric_target(workload_class)],
            {workload_class.slug: workload_class.pk},
            _thresholds(workload_class),
            start=start,
            end=end,
            now=now,
            runs=runs,
        )
        # Only this step's own minutes: the edge step before `start` belongs to the previous day.
        cells = {key: values for key, values in cells.items() if start <= key[1] < end}
        with transaction.atomic():
            written = minute_rollups_upsert(cells, newest, fetched_at=now)
            hours_start, hours_end = floor_hour(start), ceil_hour(end)
            hours = hourly_rollups_refold(class_ids=[workload_class.pk], start=hours_start, end=hours_end)
        failed = [run for run in runs if not run.ok]
        if failed:
            raise ProviderError(
                "; ".join(f"{run.metric}: {run.error}" for run in failed)[:2000],
                permanent=any(run.error.startswith("permanent") for run in failed),
                code="BACKFILL_READ_FAILED",
            )
        return {"minutes": written, "hours": hours, "metrics": len(runs)}

    def describe_outcome(self, action: Action, *, done: int, failed: int, total: int) -> str:
        return f"{done} of {total} days read from Cloud Monitoring"


register_handler(BackfillHandler())
