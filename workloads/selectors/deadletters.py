"""Read side of dead-letter triage: the one filter every list and bulk action selects rows with
(and the rows a bulk action acts on), and rows grouped by error signature, with counts and trends."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncHour
from django.utils.dateparse import parse_datetime

from workloads.errors import ApplicationError
from workloads.models import DeadLetter, DeadLetterStatus, WorkloadClass

TREND_HOURS = 24
# What a replay or a discard by filter selects when no status is given: what nobody decided on yet.
REPLAYABLE_BY_DEFAULT = (DeadLetterStatus.NEW,)
ANY_STATUS = tuple(DeadLetterStatus.values)


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters: the one shape the dashboard's lists, the API's lists and groups, the
    triage rules and the bulk actions (replay, discard, preview, dry run) select rows with, so
    a list and "replay all matching" of the same filter are the same rows.

    `ids` is an explicit selection (any status); otherwise the class, the error signature and type,
    the statuses and a time range on last seen narrow the rows. The names are the API's:
    `workload_class`, `error_signature`, `error_type`, `status`, `seen_after`, `seen_before`, `ids`.
    A bulk action also needs a class and refuses an empty filter (`is_empty`): services decide that.
    """

    workload_class: WorkloadClass | None = None
    error_signature: str = ""
    error_type: str = ""
    seen_after: datetime | None = None  # on last seen, inclusive
    seen_before: datetime | None = None  # on last seen, exclusive
    statuses: tuple[str, ...] = REPLAYABLE_BY_DEFAULT
    ids: tuple[int, ...] = field(default_factory=tuple)

    @property
    def is_empty(self) -> bool:
        """Nothing narrows the rows beyond the class and the statuses."""
        return not (self.ids or self.error_signature or self.error_type or self.seen_after or self.seen_before)

    def describe(self) -> str:
        if self.ids:
            return f"{len(self.ids)} selected"
        parts = []
        if self.error_signature:
            parts.append(f"signature {self.error_signature}")
        if self.error_type:
            parts.append(f"type {self.error_type}")
        if self.seen_after:
            parts.append(f"seen after {self.seen_after.isoformat()}")
        if self.seen_before:
            parts.append(f"seen before {self.seen_before.isoformat()}")
        return ", ".join(parts) + f" ({'/'.join(self.statuses)})"

    def as_parameters(self) -> dict:
        """JSON-ready, for an action's parameters and the audit log (the class is kept apart)."""
        if self.ids:
            return {"ids": list(self.ids)}
        return {
            "error_signature": self.error_signature,
            "error_type": self.error_type,
            "seen_after": self.seen_after.isoformat() if self.seen_after else None,
            "seen_before": self.seen_before.isoformat() if self.seen_before else None,
            "statuses": list(self.statuses),
        }

    @classmethod
    def from_parameters(cls, workload_class: WorkloadClass | None, parameters: dict) -> DeadLetterFilter:
        if parameters.get("ids"):
            return cls(workload_class=workload_class, ids=tuple(int(i) for i in parameters["ids"]))
        return cls(
            workload_class=workload_class,
            error_signature=parameters.get("error_signature") or "",
            error_type=parameters.get("error_type") or "",
            seen_after=parse_datetime(parameters["seen_after"]) if parameters.get("seen_after") else None,
            seen_before=parse_datetime(parameters["seen_before"]) if parameters.get("seen_before") else None,
            statuses=tuple(parameters.get("statuses") or REPLAYABLE_BY_DEFAULT),
        )

    def apply(self, rows: QuerySet[DeadLetter]) -> QuerySet[DeadLetter]:
        """`rows` narrowed to this filter."""
        if self.workload_class is not None:
            rows = rows.filter(workload_class=self.workload_class)
        if self.ids:
            # An explicit selection may include held or replayed rows; discarded ones are refused per row.
            return rows.filter(pk__in=self.ids)
        if set(self.statuses) != set(ANY_STATUS):
            rows = rows.filter(status__in=self.statuses)
        if self.error_signature:
            rows = rows.filter(error_signature=self.error_signature)
        if self.error_type:
            rows = rows.filter(error_type=self.error_type)
        if self.seen_after:
            rows = rows.filter(last_seen__gte=self.seen_after)
        if self.seen_before:
            rows = rows.filter(last_seen__lt=self.seen_before)
        return rows

    def queryset(self) -> QuerySet[DeadLetter]:
        """The dead letters this filter selects."""
        return self.apply(DeadLetter.objects.all())


def dead_letters_to_act_on(selection: DeadLetterFilter) -> QuerySet[DeadLetter]:
    """The rows a bulk action (replay, discard) or its preview acts on: one class, and never an
    empty filter (an empty one would act on the whole dead-letter queue)."""
    if selection.workload_class is None:
        raise ApplicationError(
            "Choose a class: a replay or a discard acts on one class's dead letters.", code="no_class", status=400
        )
    if selection.is_empty:
        raise ApplicationError(
            "Choose dead letters by signature, error type, time range or selection: an empty filter would "
            "act on the whole dead-letter queue, and is refused.",
            code="empty_filter",
            status=400,
        )
    return selection.queryset()


@dataclass(frozen=True)
class DeadLetterGroup:
    workload_class: str  # slug
    error_signature: str
    error_type: str
    sample_error_message: str  # of the group's most recent dead letter
    count: int
    new_count: int
    held_count: int
    first_seen: datetime
    last_seen: datetime
    trend: list[int]  # dead letters last seen in each of the past 24 hours, oldest first


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def dead_letter_groups(
    *,
    now: datetime,
    rows: QuerySet[DeadLetter] | None = None,
) -> list[DeadLetterGroup]:
    """One group per (class, signature) of `rows` (default: every dead letter), most recent first.
    Two queries whatever the number of groups: the groups (with their latest samples), the trend."""
    rows = rows if rows is not None else DeadLetter.objects.all()
    latest = rows.filter(
        workload_class=OuterRef("workload_class"), error_signature=OuterRef("error_signature")
    ).order_by("-last_seen", "-pk")
    groups = list(
        rows.order_by()
        .values("workload_class", "workload_class__slug", "error_signature")
        .annotate(
            count=Count("pk"),
            new_count=Count("pk", filter=Q(status=DeadLetterStatus.NEW)),
            held_count=Count("pk", filter=Q(status=DeadLetterStatus.HELD)),
            first_seen=Min("first_seen"),
            last_seen=Max("last_seen"),
            error_type=Subquery(latest.values("error_type")[:1]),
            sample=Subquery(latest.values("error_message")[:1]),
        )
        .order_by("-last_seen", "workload_class__slug", "error_signature")
    )
    start = _hour(now) - timedelta(hours=TREND_HOURS - 1)
    hours = [start + timedelta(hours=i) for i in range(TREND_HOURS)]
    per_hour = (
        rows.filter(last_seen__gte=start)
        .order_by()
        .annotate(hour=TruncHour("last_seen", tzinfo=UTC))
        .values("workload_class", "error_signature", "hour")
        .annotate(n=Count("pk"))
    )
    trends: dict[tuple[int, str], dict[datetime, int]] = {}
    for item in per_hour:
        trends.setdefault((item["workload_class"], item["error_signature"]), {})[item["hour"]] = item["n"]
    return [
        DeadLetterGroup(
            workload_class=g["workload_class__slug"],
            error_signature=g["error_signature"],
            error_type=g["error_type"] or "",
            sample_error_message=g["sample"] or "",
            count=g["count"],
            new_count=g["new_count"],
            held_count=g["held_count"],
            first_seen=g["first_seen"],
            last_seen=g["last_seen"],
            trend=[trends.get((g["workload_class"], g["error_signature"]), {}).get(h, 0) for h in hours],
        )
        for g in groups
    ]


def dead_letter_counts_by_signature(*, workload_class, start: datetime, end: datetime) -> list[dict]:
    """Dead letters of one class last seen in [start, end), per signature, largest first."""
    return list(
        DeadLetter.objects.filter(workload_class=workload_class, last_seen__gte=start, last_seen__lt=end)
        .order_by()
        .values("error_signature")
        .annotate(n=Count("pk"), error_type=Max("error_type"))
        .order_by("-n", "error_signature")
    )


# What "needs attention" means everywhere (the overview, the nav, the class page, the API): dead
# letters nobody decided on yet, and those a triage rule held for a person.
NEEDS_ATTENTION = (DeadLetterStatus.NEW, DeadLetterStatus.HELD)


@dataclass(frozen=True)
class DeadLetterAttention:
    """One class's dead letters that need a person, and how fast dead letters arrive."""

    needs_attention: int  # new + held
    new: int
    held: int
    trend: tuple[int, ...]  # dead letters (any status) last seen in each of the past 24 hours, oldest first

    @property
    def last_hour(self) -> int:
        return self.trend[-1] if self.trend else 0


def dead_letter_attention(*, now: datetime, class_ids: list[int] | None = None) -> dict[int, DeadLetterAttention]:
    """{class id: attention} for every class (of `class_ids` when given) with a dead letter needing
    attention or seen in the last 24 hours. Two grouped queries whatever the number of classes (the
    status and last-seen indexes); the mirror's rows, not the dead-letter subscription's backlog,
    which the sync drains."""
    letters = (
        DeadLetter.objects.all() if class_ids is None else DeadLetter.objects.filter(workload_class_id__in=class_ids)
    )
    counts = (
        letters.filter(status__in=NEEDS_ATTENTION)
        .order_by()
        .values("workload_class_id")
        .annotate(
            new=Count("pk", filter=Q(status=DeadLetterStatus.NEW)),
            held=Count("pk", filter=Q(status=DeadLetterStatus.HELD)),
        )
    )
    start = _hour(now) - timedelta(hours=TREND_HOURS - 1)
    hours = [start + timedelta(hours=i) for i in range(TREND_HOURS)]
    per_hour = (
        letters.filter(last_seen__gte=start)
        .order_by()
        .annotate(hour=TruncHour("last_seen", tzinfo=UTC))
        .values("workload_class_id", "hour")
        .annotate(n=Count("pk"))
    )
    trends: dict[int, dict[datetime, int]] = {}
    for item in per_hour:
        trends.setdefault(item["workload_class_id"], {})[item["hour"]] = item["n"]
    by_class = {item["workload_class_id"]: item for item in counts}
    return {
        class_id: DeadLetterAttention(
            needs_attention=by_class.get(class_id, {}).get("new", 0) + by_class.get(class_id, {}).get("held", 0),
            new=by_class.get(class_id, {}).get("new", 0),
            held=by_class.get(class_id, {}).get("held", 0),
            trend=tuple(trends.get(class_id, {}).get(hour, 0) for hour in hours),
        )
        for class_id in set(by_class) | set(trends)
    }


def dead_letters_needing_attention() -> int:
    """The fleet's total, for the navigation."""
    return DeadLetter.objects.filter(status__in=NEEDS_ATTENTION).count()
