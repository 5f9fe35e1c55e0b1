"""Read side of the schedules screen: a class's week as a 7 x 24 grid of instance bounds.

Every cell is decided by `workloads.domain.scheduling` (the functions the scaling controller uses), so the
grid shows exactly what the controller will apply, overlaps resolved the same way.
"""

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from workloads.domain.scheduling import (
    BoundsChange,
    InstanceBounds,
    instance_bounds,
    is_active_at,
    next_bounds_change,
    precedence_key,
    window_edges,
)
from workloads.models import SchedulePolicy, WorkloadClass
from workloads.selectors.scaling import SchedulePreview, latest_backlog, schedule_preview

PALETTE_SIZE = 6  # colours for windows in the grid (static/css: .sched-1 ... .sched-6); 0 = baseline


@dataclass(frozen=True)
class BoundsShift:
    at: datetime  # local to the viewer's zone
    bounds: InstanceBounds


@dataclass(frozen=True)
class HourCell:
    start: datetime  # local to the viewer's zone
    bounds: InstanceBounds  # in force at the start of the hour
    open_windows: tuple[str, ...]  # enabled windows open at the start of the hour, the winner first
    shifts: tuple[BoundsShift, ...]  # changes of the bounds within the hour
    colour: int  # the governing window's colour (0: baseline)
    is_now: bool

    @property
    def window(self) -> str | None:
        return None if self.bounds.source == "baseline" else self.bounds.source

    @property
    def overlap(self) -> bool:
        return len(self.open_windows) > 1


@dataclass(frozen=True)
class DayRow:
    day: date
    cells: list[HourCell]


@dataclass(frozen=True)
class Overlap:
    """A run of hours where several windows are open and one wins."""

    day: date
    start_hour: int
    end_hour: int  # exclusive
    winner: str
    losers: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class LegendEntry:
    policy: SchedulePolicy
    colour: int  # 0 when disabled (never governs)
    rank: int  # 1 = wins every overlap


@dataclass(frozen=True)
class WeekGrid:
    tz_name: str
    week_start: datetime  # Monday 00:00 in the viewer's zone
    days: list[DayRow]
    legend: list[LegendEntry]
    overlaps: list[Overlap]
    now_bounds: InstanceBounds
    next_change: BoundsChange | None


def _why(winner: SchedulePolicy, runner_up: SchedulePolicy) -> str:
    if winner.priority != runner_up.priority:
        return f"higher priority ({winner.priority} > {runner_up.priority})"
    if precedence_key(winner)[1] != precedence_key(runner_up)[1]:
        return "same priority, shorter window"
    return "same priority and length, first by name"


def week_grid(*, workload_class: WorkloadClass, tz_name: str, now: datetime) -> WeekGrid:
    """The current week (Monday to Sunday in `tz_name`) hour by hour: the bounds in force at each
    hour's start, the windows open then (winner first), and any change within the hour."""
    tz = zoneinfo.ZoneInfo(tz_name)
    policies = sorted(workload_class.schedules.all(), key=precedence_key)
    by_name = {p.name: p for p in policies}
    today = now.astimezone(tz).date()
    monday = today - timedelta(days=today.weekday())
    starts = [
        datetime.combine(monday + timedelta(days=d), time(h), tzinfo=tz).astimezone(UTC)
        for d in range(7)
        for h in range(24)
    ]
    week_end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=tz).astimezone(UTC)
    edges = window_edges(policies, starts[0], week_end)
    colours = {}
    for policy in policies:
        if policy.enabled:
            colours[policy.name] = len(colours) % PALETTE_SIZE + 1

    days, overlaps = [], []
    for d in range(7):
        cells = []
        for h in range(24):
            start = starts[d * 24 + h]
            end = starts[d * 24 + h + 1] if d * 24 + h + 1 < len(starts) else week_end
            bounds = instance_bounds(workload_class.baseline_bounds, policies, start)
            open_windows = tuple(p.name for p in policies if is_active_at(p, start))
            shifts, last = [], bounds
            for edge in edges:
                if start < edge < end:
                    after = instance_bounds(workload_class.baseline_bounds, policies, edge)
                    if after != last:
                        shifts.append(BoundsShift(at=edge.astimezone(tz), bounds=after))
                        last = after
            cells.append(
                HourCell(
                    start=start.astimezone(tz),
                    bounds=bounds,
                    open_windows=open_windows,
                    shifts=tuple(shifts),
                    colour=colours.get(bounds.source, 0),
                    is_now=start <= now < end,
                )
            )
        days.append(DayRow(day=monday + timedelta(days=d), cells=cells))
        overlaps.extend(_overlap_runs(days[-1], by_name))

    return WeekGrid(
        tz_name=tz_name,
        week_start=starts[0].astimezone(tz),
        days=days,
        legend=[
            LegendEntry(policy=p, colour=colours.get(p.name, 0) if p.enabled else 0, rank=rank)
            for rank, p in enumerate(policies, start=1)
        ],
        overlaps=overlaps,
        now_bounds=instance_bounds(workload_class.baseline_bounds, policies, now),
        next_change=next_bounds_change(workload_class.baseline_bounds, policies, now),
    )


def _overlap_runs(row: DayRow, by_name: dict[str, SchedulePolicy]) -> list[Overlap]:
    runs: list[Overlap] = []
    for hour, cell in enumerate(row.cells):
        if not cell.overlap:
            continue
        winner, *losers = cell.open_windows
        previous = runs[-1] if runs else None
        if previous and previous.end_hour == hour and (previous.winner, previous.losers) == (winner, tuple(losers)):
            runs[-1] = Overlap(row.day, previous.start_hour, hour + 1, winner, previous.losers, previous.why)
            continue
        why = _why(by_name[winner], by_name[losers[0]])
        runs.append(Overlap(row.day, hour, hour + 1, winner, tuple(losers), why))
    return runs


def schedule_classes(*, environment_ids: set[int] | None = None) -> list[WorkloadClass]:
    """Every class (of these environments when `environment_ids` is not None), for the drop-down."""
    classes = WorkloadClass.objects.order_by("slug").only("slug", "name")
    if environment_ids is not None:
        classes = classes.filter(environment_id__in=environment_ids)
    return list(classes)


def class_with_schedules(slug: str, *, environment_ids: set[int] | None = None) -> WorkloadClass | None:
    classes = WorkloadClass.objects.prefetch_related("schedules").filter(slug=slug)
    if environment_ids is not None:
        classes = classes.filter(environment_id__in=environment_ids)
    return classes.first()


@dataclass(frozen=True)
class TargetPreview:
    """The scaling controller's plan for the coming days, for the schedules screen."""

    preview: SchedulePreview
    backlog_source: str  # "latest poll" or "none" (no fresh telemetry: the windows' minimums)
    peak: int  # the highest hourly target, to scale the chart

    @property
    def hours(self):
        return self.preview.hours

    @property
    def changes(self):
        return self.preview.changes


def target_preview(*, workload_class: WorkloadClass, now: datetime, hours: int = 168) -> TargetPreview:
    """The instance targets the scaling controller would set over the next `hours` (from the start
    of the current hour), per hour and at each exact change point, for the backlog of the latest
    fresh poll held constant (0 without fresh telemetry: then each target is the window's minimum)."""
    backlog = latest_backlog(workload_class, now=now).messages
    start = now.replace(minute=0, second=0, microsecond=0)
    preview = schedule_preview(workload_class, start, hours, backlog=backlog or 0.0)
    return TargetPreview(
        preview=preview,
        backlog_source="latest poll" if backlog is not None else "none",
        peak=max((point.target for point in preview.hours), default=0),
    )
