"""One page of the fleet overview, ordered in SQL.

With a thousand classes the overview cannot build every row to show fifty: each row reads its SLOs,
alerts, usage, schedules and dead letters and renders a few hundred template nodes. So the order
is decided in the database, from one annotated query over the filtered classes, and only the page's
classes get full rows (`fleet.fleet_rows` restricted to them). The same number of queries and the
same rows built whatever the size of the fleet: a count, the page's ids, and the rows' own reads.

Every SQL sort key mirrors `fleet._sort_value`, the Python order the rows had before paging (and
still have within `fleet_rows`): missing values last in both directions, ties by slug. The status
rank in particular must equal `fleet.STATUS_SEVERITY[row.status]` for every row
(tests/workloads/test_fleet_page.py checks each status against the row built in Python).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Collate, Lower

from workloads.models import (
    AlertSeverity,
    DeadLetter,
    PoolHold,
    Slo,
    SloAlert,
    SloStatus,
    WorkloadClass,
)
from workloads.models.incidents import OPEN_HOLD_STATES, PoolHealth
from workloads.selectors import fleet
from workloads.selectors.cost import class_cost, class_usage
from workloads.selectors.deadletters import NEEDS_ATTENTION
from workloads.selectors.slos import AT_RISK_BUDGET_PERCENT
from workloads.selectors.telemetry import ClassStatus

PAGE_SIZE = 50

SEVERITY = fleet.STATUS_SEVERITY
TIER_RANK = fleet.TIER_RANK


@dataclass(frozen=True)
class FleetFilters:
    """What narrows the overview. A new filter (the class's environment, say) is a field here and
    one line in `filtered_classes`: the order, the count and the page follow from the queryset."""

    team: str = ""
    tier: str = ""
    search: str = ""
    environment: str = ""  # an environment's slug (the screens' switcher)

    @property
    def active(self) -> bool:
        return any(getattr(self, name) for name in self.__dataclass_fields__)


def filtered_classes(filters: FleetFilters) -> QuerySet[WorkloadClass]:
    classes = WorkloadClass.objects.all()
    if filters.team:
        classes = classes.filter(owner_team=filters.team)
    if filters.tier:
        classes = classes.filter(tier=filters.tier)
    if filters.environment:
        classes = classes.filter(environment__slug=filters.environment)
    if filters.search:
        classes = classes.filter(Q(slug__icontains=filters.search) | Q(name__icontains=filters.search))
    return classes


# Each fact the status rests on is a set of class ids, an uncorrelated subquery PostgreSQL reads once
# and hashes ("hashed SubPlan"): a correlated EXISTS through the SLO join was planned as a scan of
# every SLO status per class, 0.8 s at 1,000 classes.
def _classes_of_alerts(**extra) -> QuerySet:
    return SloAlert.objects.filter(resolved_at__isnull=True, **extra).values("slo__workload_class_id")


def _classes_of_statuses(**extra) -> QuerySet:
    return SloStatus.objects.filter(**extra).values("slo__workload_class_id")


def _classes_held(**extra) -> QuerySet:
    return PoolHold.objects.filter(state__in=OPEN_HOLD_STATES, **extra).values("workload_class_id")


def _status_rank(classes: QuerySet[WorkloadClass], now: datetime) -> QuerySet[WorkloadClass]:
    """`status_rank`: fleet.STATUS_SEVERITY of the row's status, from the same facts
    telemetry._class_status and FleetRow.status judge (newest sample, open alerts, SLO statuses,
    the pool's health and open hold), in the same precedence."""
    stale_before = now - timedelta(seconds=settings.TELEMETRY_STALE_AFTER_SECONDS)
    live = Case(
        When(telemetry__newest_sample_at__isnull=True, then=Value(SEVERITY[ClassStatus.NO_DATA])),
        When(telemetry__newest_sample_at__lt=stale_before, then=Value(SEVERITY[ClassStatus.STALE])),
        When(
            Q(pk__in=_classes_of_alerts(severity=AlertSeverity.PAGE)) | Q(pk__in=_classes_of_statuses(met=False)),
            then=Value(SEVERITY[ClassStatus.BREACHED]),
        ),
        When(
            Q(pk__in=_classes_of_alerts())
            | Q(pk__in=_classes_of_statuses(budget_remaining_percent__lt=AT_RISK_BUDGET_PERCENT)),
            then=Value(SEVERITY[ClassStatus.AT_RISK]),
        ),
        default=Value(SEVERITY[ClassStatus.OK]),
        output_field=IntegerField(),
    )
    warned = (SEVERITY[ClassStatus.BREACHED], SEVERITY[ClassStatus.AT_RISK])
    return classes.annotate(live_rank=live).annotate(
        status_rank=Case(
            When(pool_control__health=PoolHealth.UNHEALTHY, then=Value(SEVERITY[fleet.POOL_UNHEALTHY])),
            When(
                Q(pk__in=_classes_held(hold_count__gt=0)) & ~Q(live_rank__in=warned),
                then=Value(SEVERITY[fleet.POOL_HELD]),
            ),
            When(Q(pk__in=_classes_held()) & ~Q(live_rank__in=warned), then=Value(SEVERITY[fleet.POOL_PAUSED])),
            default=F("live_rank"),
            output_field=IntegerField(),
        )
    )


def _text(field: str):
    """Lower-cased for sorting as Python's str.lower() does: by code point (PostgreSQL's "C"
    collation), not the database's locale, which ignores spaces and punctuation."""
    lowered = Lower(field)
    return Collate(lowered, "C") if connection.vendor == "postgresql" else lowered


def _sort_expression(key: str, now: datetime):
    """The SQL expression of one sort key (see fleet._sort_value); None for the cost, which is
    computed from today's usage in Python (`_cost_order`)."""
    if key == "status":
        return F("status_rank")
    if key == "name":
        return _text("name")
    if key == "team":
        return _text("owner_team")
    if key == "tier":
        return Case(
            *(When(tier=tier, then=Value(rank)) for tier, rank in TIER_RANK.items()),
            default=Value(99),
            output_field=IntegerField(),
        )
    columns = {
        "queue_age": "telemetry__oldest_unacked_age_seconds",
        "backlog": "telemetry__backlog",
        "p95": "telemetry__latency_p95_seconds",
        "instances": "telemetry__instances",
    }
    if key in columns:
        return F(columns[key])
    # From the class's SLOs (the workload_class index), each joined to its status or open alerts.
    slos = Slo.objects.filter(workload_class=OuterRef("pk")).order_by().values("workload_class")
    if key == "budget":
        return Subquery(slos.annotate(worst=Min("status__budget_remaining_percent")).values("worst"))
    if key == "alerts":
        # Incidents, as the column counts them: one per SLO with a window open (an inner join: an
        # SLO without alerts must not pass as one whose alert is unresolved).
        open_slos = slos.filter(alerts__isnull=False, alerts__resolved_at__isnull=True).annotate(
            n=Count("pk", distinct=True)
        )
        return Coalesce(Subquery(open_slos.values("n")), Value(0))
    if key == "dead_letters":
        waiting = (
            DeadLetter.objects.filter(workload_class=OuterRef("pk"), status__in=NEEDS_ATTENTION)
            .order_by()
            .values("workload_class")
            .annotate(n=Count("pk"))
        )
        return Coalesce(Subquery(waiting.values("n")), Value(0))
    return None


def ordered_classes(classes: QuerySet[WorkloadClass], *, sort: str, now: datetime) -> QuerySet[WorkloadClass] | list:
    """The classes in the overview's order for `sort` ("key" or "-key")."""
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    if key not in fleet.FLEET_SORT_KEYS:
        raise ValueError(f"Unknown sort key {key!r}")
    if key == "status":
        classes = _status_rank(classes, now)
    expression = _sort_expression(key, now)
    if expression is None:
        return _cost_order(classes, descending=descending, now=now)
    ordering = expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)
    return classes.order_by(ordering, "slug")


def _cost_order(classes: QuerySet[WorkloadClass], *, descending: bool, now: datetime) -> list[int]:
    """Class ids by today's cost: one grouped query of today's usage and the class rates, priced
    as the cost column prices them (class_cost), so the order matches the figures shown."""
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    candidates = list(classes.select_related("cost_rates").order_by("slug"))
    usage = class_usage(start=day_start, end=now, class_ids=[wc.pk for wc in candidates], now=now)
    costs = {}
    for wc in candidates:
        line = class_cost(wc, usage.get(wc.pk, {}))
        costs[wc.pk] = line.total_cost if line.has_rates else None
    known = [wc.pk for wc in candidates if costs[wc.pk] is not None]
    known.sort(key=costs.__getitem__, reverse=descending)
    return known + [wc.pk for wc in candidates if costs[wc.pk] is None]


@dataclass(frozen=True)
class FleetPage:
    page: Page
    rows: list  # fleet.FleetRow of the page's classes, in the page's order


def fleet_page(
    *, now: datetime, filters: FleetFilters, sort: str = "status", number=1, per_page: int | None = None
) -> FleetPage:
    """The `number`th page (a bad or out-of-range number gives the nearest page, as Django's
    get_page does) of the filtered classes in the order of `sort`, with full rows for its classes only."""
    ordered = ordered_classes(filtered_classes(filters), sort=sort, now=now)
    # Every id in order in one statement, paged here, rather than a COUNT and then the page's slice:
    # both would evaluate the order over every class anyway, and each statement is a round trip and
    # a compile of the status order in Python. A thousand ids are 8 kB.
    if not isinstance(ordered, list):
        ordered = list(ordered.values_list("pk", flat=True))
    page = Paginator(ordered, per_page or PAGE_SIZE).get_page(number)
    ids = list(page.object_list)
    by_id = {row.workload_class.pk: row for row in fleet.fleet_rows(now=now, class_ids=ids)} if ids else {}
    return FleetPage(page=page, rows=[by_id[pk] for pk in ids if pk in by_id])
