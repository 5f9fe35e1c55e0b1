"""Read side of dead-letter triage: rows grouped by error signature, with counts and trends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncHour

from workloads.models import DeadLetter, DeadLetterStatus

TREND_HOURS = 24


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
