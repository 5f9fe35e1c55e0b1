"""Cost attribution: what each class (or owner team) cost over a period, from the rollups'
instance-seconds, records and tokens at the class's rates, and the waste in it: instance time
while the class's pool was unhealthy (its workers did no work). Only reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from workloads.domain.windows import window_spans
from workloads.models import AuditEvent, MetricRollup, Resolution, WorkloadClass
from workloads.runtimes import Figure, Runtime, Source, profile
from workloads.selectors.rollups import USAGE_COLUMNS, minutes_kept_since, spans_query

GROUP_BY_CHOICES = ("class", "team")
_MONEY = Decimal("0.000001")
# A line's fields that name it rather than count something: adding lines (a team's) leaves them.
_LABEL_FIELDS = frozenset(
    {"key", "name", "owner_team", "currency", "has_rates", "instance_time_known", "instance_time_source"}
)


def instance_time_source(wc: WorkloadClass, *, known: bool) -> str:
    """Where a class's instance time (its compute cost) comes from, for people: a pool's instance
    count, an observed runtime's own Monitoring metrics, or nothing (then its cost is unknown)."""
    if wc.runtime == Runtime.WORKER_POOL:
        return "the worker pool's instance count"
    metrics = [
        o.metric_type
        for o in profile(wc.runtime).figures().get(Figure.INSTANCE_TIME, [])
        if o.source == Source.RUNTIME_METRICS
    ]
    if known:
        return f"the runtime's own Cloud Monitoring metrics ({', '.join(metrics)})" if metrics else "received"
    if metrics:
        return f"unknown: no {', '.join(metrics)} received for the period"
    return f"unknown: {Runtime(wc.runtime).label} reports no instance time"


@dataclass
class CostLine:
    key: str  # class slug or team
    name: str
    owner_team: str
    currency: str
    has_rates: bool
    classes: int = 1
    instance_seconds: Decimal = Decimal(0)
    vcpu_seconds: Decimal = Decimal(0)
    gib_seconds: Decimal = Decimal(0)
    records: int = 0
    tokens: int = 0
    completed: int = 0
    failed: int = 0
    compute_cost: Decimal = Decimal(0)
    records_cost: Decimal = Decimal(0)
    tokens_cost: Decimal = Decimal(0)
    # Instance time while the pool was unhealthy (its workers did no work; workloads.domain.health), and
    # its compute cost: part of the totals above, shown apart as waste.
    waste_instance_seconds: Decimal = Decimal(0)
    waste_cost: Decimal = Decimal(0)
    # False for a class on an observed runtime whose instance time did not arrive (none read, or
    # its runtime has none): its compute cost is unknown, not $0, and so is its cost per 1k.
    instance_time_known: bool = True
    instance_time_source: str = ""

    @property
    def total_cost(self) -> Decimal:
        """What is known of the cost: without compute when instance_time_known is false."""
        return self.compute_cost + self.records_cost + self.tokens_cost

    @property
    def known_compute_cost(self) -> Decimal | None:
        return self.compute_cost if self.instance_time_known else None

    @property
    def cost_per_1k_records(self) -> Decimal | None:
        if not self.records or not self.instance_time_known:
            return None
        return (self.total_cost * 1000 / self.records).quantize(_MONEY)

    @property
    def cost_per_completed_job(self) -> Decimal | None:
        if not self.instance_time_known:
            return None
        return (self.total_cost / self.completed).quantize(_MONEY) if self.completed else None

    def add(self, other: CostLine) -> None:
        for name in (f.name for f in fields(self) if f.name not in _LABEL_FIELDS):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.has_rates = self.has_rates and other.has_rates
        self.instance_time_known = self.instance_time_known and other.instance_time_known


@dataclass
class CostReport:
    start: datetime
    end: datetime
    group_by: str
    lines: list[CostLine]


def class_cost(wc: WorkloadClass, usage: dict) -> CostLine:
    rates = wc.cost_rates
    instance_seconds = Decimal(str(round(usage.get("instance_seconds") or 0.0, 3)))
    # A pool's instance count is always read (0 instances is a real zero); an observed runtime's
    # instance time is known only where samples arrived.
    known = wc.runtime == Runtime.WORKER_POOL or bool(usage.get("instance_samples")) or instance_seconds > 0
    line = CostLine(
        key=wc.slug,
        name=wc.name,
        owner_team=wc.owner_team,
        currency=rates.currency if rates else "",
        has_rates=rates is not None,
        instance_seconds=instance_seconds,
        vcpu_seconds=instance_seconds * wc.vcpu_per_instance,
        gib_seconds=instance_seconds * wc.memory_gib_per_instance,
        records=int(usage.get("records") or 0),
        tokens=int(usage.get("tokens") or 0),
        completed=int(usage.get("completed") or 0),
        failed=int(usage.get("failed") or 0),
        instance_time_known=known,
        instance_time_source=instance_time_source(wc, known=known),
    )
    line.waste_instance_seconds = Decimal(str(round(usage.get("waste_instance_seconds") or 0.0, 3)))
    if rates is not None:
        line.compute_cost, line.records_cost, line.tokens_cost = _priced(wc, rates, instance_seconds, usage)
        per_instance_second = wc.vcpu_per_instance * rates.vcpu_second + wc.memory_gib_per_instance * rates.gib_second
        line.waste_cost = (line.waste_instance_seconds * per_instance_second).quantize(_MONEY)
    return line


def _priced(wc: WorkloadClass, rates, instance_seconds: Decimal, usage: dict) -> tuple[Decimal, Decimal, Decimal]:
    """Compute, records and tokens cost of `usage` at the class's rates, each rounded to _MONEY."""
    compute = instance_seconds * wc.vcpu_per_instance * rates.vcpu_second
    compute += instance_seconds * wc.memory_gib_per_instance * rates.gib_second
    records = int(usage.get("records") or 0) * rates.per_record
    tokens = Decimal(int(usage.get("tokens") or 0)) / 1000 * rates.per_1k_tokens
    return compute.quantize(_MONEY), records.quantize(_MONEY), tokens.quantize(_MONEY)


def usage_cost(wc: WorkloadClass, usage: dict) -> Decimal | None:
    """What `class_cost(wc, usage).total_cost` is, None without rates, without building the line
    (the running cost counters price every polled minute of every class: 12,000 a poll)."""
    rates = wc.cost_rates
    if rates is None:
        return None
    instance_seconds = Decimal(str(round(usage.get("instance_seconds") or 0.0, 3)))
    compute, records, tokens = _priced(wc, rates, instance_seconds, usage)
    return compute + records + tokens


def class_usage(*, start: datetime, end: datetime, class_ids: Iterable[int] | None = None, now: datetime) -> dict:
    """{class_id: {instance_seconds, records, tokens, completed, failed, instance_samples}} summed
    in SQL over the rollups covering [start, end); instance_samples counts the rows with an
    instance sample (a gap is NULL, not 0)."""
    spans = window_spans(start, end, minutes_kept_since=minutes_kept_since(now))
    if not spans:
        return {}
    rows = MetricRollup.objects.filter(spans_query(spans))
    if class_ids is not None:
        rows = rows.filter(workload_class_id__in=list(class_ids))
    totals = (
        rows.order_by()
        .values("workload_class_id")
        .annotate(**{name: Sum(name) for name in USAGE_COLUMNS}, instance_samples=Count("instances"))
    )
    return {row.pop("workload_class_id"): row for row in totals}


# How far before a period an unhealthy spell may have begun and still be found (its opening audit
# event); pools are not left unhealthy for longer without someone acting.
SPELL_LOOKBACK = timedelta(days=7)


def unhealthy_spells(*, slugs: Iterable[str], start: datetime, end: datetime) -> dict[str, list[tuple]]:
    """{slug: [(from, to), ...]}: when each class's pool was unhealthy within [start, end), from the
    audit events the health check writes (`pool.unhealthy` opens a spell, `pool.recovered` ends it)."""
    events = (
        AuditEvent.objects.filter(
            action__in=("pool.unhealthy", "pool.recovered"),
            workload_class_slug__in=list(slugs),
            occurred_at__gte=start - SPELL_LOOKBACK,
            occurred_at__lt=end,
        )
        .order_by("occurred_at", "id")
        .values_list("workload_class_slug", "action", "occurred_at")
    )
    opened: dict[str, datetime] = {}
    spells: dict[str, list[tuple]] = {}
    for slug, action, at in events:
        if action == "pool.unhealthy":
            opened.setdefault(slug, at)
        elif slug in opened:
            spells.setdefault(slug, []).append((opened.pop(slug), at))
    for slug, at in opened.items():
        spells.setdefault(slug, []).append((at, end))
    return {
        slug: [(max(a, start), min(b, end)) for a, b in found if b > start and a < end]
        for slug, found in spells.items()
    }


def _waste_seconds(classes: list[WorkloadClass], *, start: datetime, end: datetime) -> dict[int, float]:
    """Instance-seconds of the minute rollups inside each class's unhealthy spells."""
    spells = unhealthy_spells(slugs=[wc.slug for wc in classes], start=start, end=end)
    waste = {}
    for wc in classes:
        condition = Q()
        for a, b in spells.get(wc.slug, []):
            condition |= Q(bucket_start__gte=a, bucket_start__lt=b)
        if condition:
            total = MetricRollup.objects.filter(condition, workload_class=wc, resolution=Resolution.MINUTE).aggregate(
                seconds=Sum("instance_seconds")
            )["seconds"]
            waste[wc.pk] = total or 0.0
    return waste


def cost_report(
    *, start: datetime, end: datetime, group_by: str = "class", now: datetime | None = None, environment=None
) -> CostReport:
    """Cost per class (or per owner team) for [start, end): instance-seconds from the instance
    series x vCPU and memory x the class's rates, plus records and tokens at their rates. Teams
    are split by currency, never summed across currencies. `environment`: its classes only."""
    if group_by not in GROUP_BY_CHOICES:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY_CHOICES)}.")
    now = now or timezone.now()
    classes = WorkloadClass.objects.select_related("cost_rates").order_by("slug")
    if environment is not None:
        classes = classes.filter(environment=environment)
    classes = list(classes)
    usage = class_usage(start=start, end=end, now=now)
    waste = _waste_seconds(classes, start=start, end=end)
    lines = [class_cost(wc, usage.get(wc.pk, {}) | {"waste_instance_seconds": waste.get(wc.pk)}) for wc in classes]
    if group_by == "team":
        teams: dict[tuple[str, str], CostLine] = {}
        for line in lines:
            key = (line.owner_team, line.currency)
            if key not in teams:
                teams[key] = CostLine(
                    key=line.owner_team,
                    name=line.owner_team,
                    owner_team=line.owner_team,
                    currency=line.currency,
                    has_rates=True,
                    classes=0,
                )
            teams[key].add(line)
        lines = sorted(teams.values(), key=lambda t: (t.key, t.currency))
    return CostReport(start=start, end=end, group_by=group_by, lines=lines)
