"""What each class's runtime lets us observe, and which of those figures actually arrived."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Sum

from workloads.models import ControlSignal, MetricRollup, Resolution, WorkloadClass
from workloads.runtimes import SOURCE_LABELS, UNREAD_METRIC_TYPES, Figure, Observation, Runtime, Source, profile

RECENT = timedelta(hours=1)

FIGURE_LABELS = {
    Figure.QUEUE_AGE: "Queue age",
    Figure.BACKLOG: "Backlog",
    Figure.ACKS: "Acknowledged messages",
    Figure.EXECUTIONS: "Executions",
    Figure.ERRORS: "Errors",
    Figure.LATENCY: "Completion latency",
    Figure.INSTANCE_TIME: "Instance time (cost)",
    Figure.COMPLETIONS: "Completions",
}
# Sources the control plane reads today; the others are listed so a team sees what Google
# publishes for its runtime, and marked as not read.
READ_SOURCES = frozenset(
    {Source.SUBSCRIPTION, Source.RUNTIME_METRICS, Source.WORKER_KIT, Source.CELERY_EVENTS, Source.POOL}
)
# Figures read from a source that lands in no rollup column.
UNREAD = {(Figure.ACKS, Source.SUBSCRIPTION)}


@dataclass(frozen=True)
class SourceRow:
    source: Source
    label: str
    metric_type: str
    resource_type: str
    read: bool


@dataclass(frozen=True)
class FigureRow:
    figure: Figure
    label: str
    sources: list[SourceRow]
    status: str  # "received", "no data", "not read"

    @property
    def missing(self) -> bool:
        return self.status != "received"


def _source_row(observation: Observation) -> SourceRow:
    read = (
        observation.source in READ_SOURCES
        and (observation.figure, observation.source) not in UNREAD
        and observation.metric_type not in UNREAD_METRIC_TYPES
    )
    return SourceRow(
        observation.source,
        SOURCE_LABELS[observation.source],
        observation.metric_type,
        observation.resource_type,
        read,
    )


def _received(workload_class: WorkloadClass, *, now: datetime) -> set[Figure]:
    """Figures with data in the class's minute rollups of the last hour."""
    rows = MetricRollup.objects.filter(
        workload_class=workload_class, resolution=Resolution.MINUTE, bucket_start__gte=now - RECENT
    ).aggregate(
        age=Max("oldest_unacked_age_seconds"),
        backlog=Max("backlog"),
        instances=Sum("instance_seconds"),
        completed=Sum("completed"),
        failed=Sum("failed"),
        latency=Sum("latency_count"),
        executions=Sum("executions"),
        runtime_latency=Sum("runtime_latency_count"),
    )
    found = set()
    if rows["age"] is not None:
        found.add(Figure.QUEUE_AGE)
    if rows["backlog"] is not None:
        found.add(Figure.BACKLOG)
    if rows["instances"]:
        found.add(Figure.INSTANCE_TIME)
    if rows["completed"] or rows["failed"]:
        found |= {Figure.COMPLETIONS, Figure.EXECUTIONS, Figure.ERRORS}
    if rows["latency"] or rows["runtime_latency"]:
        found.add(Figure.LATENCY)
    if rows["executions"]:  # the runtime's own count: its errors are a share of these
        found |= {Figure.EXECUTIONS, Figure.ERRORS}
    return found


def class_observation(workload_class: WorkloadClass, *, now: datetime) -> list[FigureRow]:
    """One row per figure the class's runtime can give: where it comes from (Google's metric and
    resource types where it is a Monitoring metric) and whether it arrived in the last hour."""
    received = _received(workload_class, now=now)
    rows = []
    for figure, observations in profile(workload_class.runtime).figures().items():
        sources = [_source_row(o) for o in observations]
        if not any(s.read for s in sources):
            status = "not read"
        elif figure in received:
            status = "received"
        else:
            status = "no data"
        rows.append(FigureRow(figure, FIGURE_LABELS[figure], sources, status))
    return rows


def celery_classes_by_task() -> dict[str, str]:
    """{Celery task name: class slug} of the classes that run on Celery."""
    return dict(
        WorkloadClass.objects.filter(runtime=Runtime.CELERY)
        .exclude(runtime_resource="")
        .values_list("runtime_resource", "slug")
    )


def signal_state(signal: ControlSignal, *, now: datetime) -> str:
    """pending (not delivered yet), failed, sent, acknowledged, or silent (sent, unacknowledged
    for longer than RUNTIME_CONTROL_ACK_SECONDS)."""
    if signal.acknowledged_at is not None:
        return "acknowledged"
    if signal.sent_at is None:
        return "failed" if signal.action is not None and signal.action.state == "failed" else "pending"
    if now - signal.sent_at > timedelta(seconds=settings.RUNTIME_CONTROL_ACK_SECONDS):
        return "silent"
    return "sent"


def class_control_signals(workload_class: WorkloadClass, *, now: datetime, limit: int = 10) -> list[tuple]:
    """The class's latest control signals with their state: [(signal, state)]."""
    signals = ControlSignal.objects.filter(workload_class=workload_class).select_related("action")[:limit]
    return [(signal, signal_state(signal, now=now)) for signal in signals]
