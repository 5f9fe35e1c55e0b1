"""The Metrics port computed from the local provider's own tables, in the GCP adapter's shape.

- Queue gauges (backlog, oldest unacked age, dead-letter backlog and its oldest age) are rebuilt for each step from
  the publish and ack times of retained deliveries: a message is in the backlog at t when it was
  published at or before t and not acked by t. One SQL statement per GAUGE_STEPS_PER_QUERY steps,
  grouped by subscription, however many classes. History older than the subscription's retention
  is gone with the pruned deliveries, as on Pub/Sub.
- The instance count is the time-weighted mean per step of the pool's count history (one query).
- Counters and the latency distribution add up worker reports whose interval ends in the step
  (one query each; a report's bucket counts are one column).

Every step is (end - step, end], ends aligned to multiples of the step since the epoch; a step that
has not started yet is left out, and the one running now is evaluated at now. Steps without data
are absent: a subscription or pool that did not exist yet, a class whose workers sent no report.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from django.db import connections
from django.db.models import (
    BigIntegerField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.utils import timezone

from workloads.providers.base import (
    LATENCY_BUCKET_BOUNDS,
    Distribution,
    MetricKind,
    Metrics,
    MetricTarget,
    Point,
    ReportRows,
    WorkerReport,
)
from workloads.providers.local.models import (
    LocalDelivery,
    LocalPoolChange,
    LocalSubscription,
    LocalWorkerReport,
)
from workloads.providers.local.names import invalid

# Each step is one aggregate column; this keeps a day of minute steps to a few statements and every
# statement far below PostgreSQL's 1664 result columns.
GAUGE_STEPS_PER_QUERY = 360
MAX_STEPS = 50_000

_QUEUE_GAUGES = {
    MetricKind.UNDELIVERED_MESSAGES,
    MetricKind.OLDEST_UNACKED_AGE,
    MetricKind.DEAD_LETTER_BACKLOG,
    MetricKind.DEAD_LETTER_OLDEST_AGE,
}
_DEAD_LETTER_GAUGES = {MetricKind.DEAD_LETTER_BACKLOG, MetricKind.DEAD_LETTER_OLDEST_AGE}
_AGE_GAUGES = {MetricKind.OLDEST_UNACKED_AGE, MetricKind.DEAD_LETTER_OLDEST_AGE}
_BUCKETS = range(len(LATENCY_BUCKET_BOUNDS) + 1)
# A report's bucket count fits a PostgreSQL integer, so a step's counts are summed as integers into a
# bigint: summed as bigints, PostgreSQL adds them into numerics, and turning each of 41 sums per step
# back into a bigint doubled the sums' CPU (some 30 ms for the 12,000 steps of 200 classes x 60 min).
REPORT_BUCKET_COUNT_MAX = 2**31 - 1
_COUNTER_FIELDS = {
    MetricKind.COMPLETED: "completed",
    MetricKind.FAILED: "failed",
    MetricKind.RECORDS: "records",
    MetricKind.TOKENS: "tokens",
}


def step_ends(start: datetime, end: datetime, step_seconds: int, now: datetime) -> list[datetime]:
    """Ends of the steps covering (start, end], aligned to the step; steps not yet begun are cut."""
    base = math.floor(start.timestamp() / step_seconds) * step_seconds
    last = math.ceil(end.timestamp() / step_seconds) * step_seconds
    horizon = now.timestamp()
    if (last - base) / step_seconds > MAX_STEPS:
        raise invalid(f"{(last - base) // step_seconds} steps asked for; at most {MAX_STEPS} per series.")
    ends = []
    moment = base + step_seconds
    while moment <= last and moment - step_seconds < horizon:
        ends.append(datetime.fromtimestamp(moment, UTC))
        moment += step_seconds
    return ends


class LocalMetrics(Metrics):
    def __init__(self, *, using: str = "default", now: Callable[[], datetime] = timezone.now):
        self.using = using
        self._now = now
        self.statements = 0  # SQL statements run by series() so far (the contract suite's budget)

    def _count_statement(self, execute, sql, params, many, context):
        self.statements += 1
        return execute(sql, params, many, context)

    def series(
        self,
        metric: MetricKind,
        targets: Sequence[MetricTarget],
        *,
        start: datetime,
        end: datetime,
        step_seconds: int = 60,
    ) -> dict[str, list[Point]]:
        metric = MetricKind(metric)
        if step_seconds < 1:
            raise invalid(f"step_seconds must be at least 1, got {step_seconds}.")
        if timezone.is_naive(start) or timezone.is_naive(end):
            raise invalid("start and end must be timezone-aware.")
        now = self._now()
        steps = step_ends(start, end, step_seconds, now)
        if not targets or not steps:
            return {}
        with connections[self.using].execute_wrapper(self._count_statement):
            if metric in _QUEUE_GAUGES:
                return self._queue_gauge(metric, targets, steps, now)
            if metric is MetricKind.INSTANCE_COUNT:
                return self._instance_count(targets, steps, step_seconds, now)
            if metric is MetricKind.COMPLETION_LATENCY:
                return self._latency(targets, steps, step_seconds)
            return self._counter(_COUNTER_FIELDS[metric], targets, steps, step_seconds)

    # --- queue gauges -----------------------------------------------------------------------------------
    def _queue_gauge(
        self, metric: MetricKind, targets: Sequence[MetricTarget], steps: list[datetime], now: datetime
    ) -> dict[str, list[Point]]:
        slugs_by_subscription: dict[str, list[str]] = defaultdict(list)
        for target in targets:
            name = target.dead_letter_subscription if metric in _DEAD_LETTER_GAUGES else target.subscription
            slugs_by_subscription[name].append(target.slug)
        at = [min(step, now) for step in steps]  # the running step is measured now
        connection = connections[self.using]
        quote, ops = connection.ops.quote_name, connection.ops
        # Parameters as the ORM would pass them (SQLite keeps datetimes as naive UTC text).
        moment = ops.adapt_datetimefield_value
        # The datetimes the driver returns as such (PostgreSQL), or as text (SQLite).
        read_datetime = getattr(ops, "convert_datetimefield_value", None)
        aggregate = "MIN(d.published_at)" if metric in _AGE_GAUGES else "COUNT(d.id)"
        names = list(slugs_by_subscription)
        result: dict[str, list[Point]] = defaultdict(list)
        for first in range(0, len(steps), GAUGE_STEPS_PER_QUERY):
            chunk = range(first, min(first + GAUGE_STEPS_PER_QUERY, len(steps)))
            lo, hi = at[chunk[0]], at[chunk[-1]]
            # Hand-written (the ORM's 60 filtered aggregates per metric cost more Python than the
            # query costs PostgreSQL): per subscription, the deliveries in the backlog at each step,
            # one aggregate column per step. Only deliveries in the backlog at some step of the
            # chunk take part in the join.
            columns, params = [], []
            for i in chunk:
                columns.append(
                    f"{aggregate} FILTER (WHERE d.published_at <= %s AND (d.acked_at IS NULL OR d.acked_at > %s))"
                )
                params += [moment(at[i]), moment(at[i])]
            sql = f"""
                SELECT s.name, s.created_at, {", ".join(columns)}
                  FROM {quote(LocalSubscription._meta.db_table)} s
                  LEFT JOIN {quote(LocalDelivery._meta.db_table)} d
                    ON d.subscription_id = s.id AND d.published_at <= %s AND (d.acked_at IS NULL OR d.acked_at > %s)
                 WHERE s.name IN ({", ".join(["%s"] * len(names))})
                 GROUP BY s.id, s.name, s.created_at
            """
            params += [moment(hi), moment(lo), *names]
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            for name, created_at, *values in rows:
                if read_datetime is not None:
                    created_at = read_datetime(created_at, None, connection)
                points = []
                for i, value in zip(chunk, values, strict=True):
                    if created_at > at[i]:
                        continue
                    if metric in _AGE_GAUGES:
                        if value is not None and read_datetime is not None:
                            value = read_datetime(value, None, connection)
                        value = max(0.0, (at[i] - value).total_seconds()) if value is not None else 0.0
                    points.append(Point(end=steps[i], value=float(value)))
                for slug in slugs_by_subscription[name]:
                    result[slug].extend(points)
        return dict(result)

    # --- instance count -------------------------------------------------------------------------------
    def _instance_count(
        self, targets: Sequence[MetricTarget], steps: list[datetime], step_seconds: int, now: datetime
    ) -> dict[str, list[Point]]:
        step = timedelta(seconds=step_seconds)
        slugs_by_pool: dict[str, list[str]] = defaultdict(list)
        for target in targets:
            slugs_by_pool[target.worker_pool].append(target.slug)
        lo, hi = steps[0] - step, min(steps[-1], now)
        # The count in force when the window opens, plus every change inside it.
        in_force = (
            LocalPoolChange.objects.filter(pool=OuterRef("pool"), changed_at__lte=lo)
            .order_by("-changed_at", "-pk")
            .values("pk")[:1]
        )
        rows = (
            LocalPoolChange.objects.using(self.using)
            .filter(pool__name__in=list(slugs_by_pool))
            .filter(Q(changed_at__gt=lo, changed_at__lte=hi) | Q(pk=Subquery(in_force)))
            .order_by("pool_id", "changed_at", "pk")
            .values_list("pool__name", "changed_at", "instance_count")
        )
        history: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
        for name, changed_at, count in rows:
            history[name].append((changed_at, count))
        result: dict[str, list[Point]] = {}
        for name, changes in history.items():
            points = []
            for end in steps:
                mean = _time_weighted_mean(changes, end - step, min(end, now))
                if mean is not None:
                    points.append(Point(end=end, value=mean))
            for slug in slugs_by_pool[name]:
                result[slug] = points
        return result

    # --- worker reports -----------------------------------------------------------------------------------
    @staticmethod
    def _window_ms(steps: list[datetime], step_seconds: int) -> tuple[int, int]:
        """(base_ms, last_ms): the reports of these steps are those whose interval ends in (base, last]."""
        base_ms = round((steps[0] - timedelta(seconds=step_seconds)).timestamp() * 1000)
        return base_ms, round(steps[-1].timestamp() * 1000)

    def _step_index(self, field: str, steps: list[datetime], step_seconds: int) -> ExpressionWrapper:
        base_ms, _last_ms = self._window_ms(steps, step_seconds)
        # Integer division on both databases: (end_ms - base_ms - 1) // step_ms is the step whose
        # (end - step, end] holds the report's interval end.
        return ExpressionWrapper(
            (F(field) - Value(base_ms + 1, output_field=BigIntegerField())) / Value(step_seconds * 1000),
            output_field=BigIntegerField(),
        )

    def _reports(self, targets: Sequence[MetricTarget], steps: list[datetime], step_seconds: int):
        base_ms, last_ms = self._window_ms(steps, step_seconds)
        return {
            "slug__in": sorted({t.slug for t in targets}),
            "interval_end_ms__gt": base_ms,
            "interval_end_ms__lte": last_ms,
        }

    def _counter(
        self, field: str, targets: Sequence[MetricTarget], steps: list[datetime], step_seconds: int
    ) -> dict[str, list[Point]]:
        rows = (
            LocalWorkerReport.objects.using(self.using)
            .filter(**self._reports(targets, steps, step_seconds))
            .annotate(step=self._step_index("interval_end_ms", steps, step_seconds))
            .values("slug", "step")
            .annotate(total=Sum(field))
            .order_by("slug", "step")
        )
        result: dict[str, list[Point]] = defaultdict(list)
        for slug, step, total in self._raw(rows.values_list("slug", "step", "total")):
            result[slug].append(Point(end=steps[step], value=float(total or 0)))
        return dict(result)

    def _raw(self, rows) -> list[tuple]:
        """The queryset's rows as the driver returns them, without Django's per-value converters:
        these queries return text, integers and numbers only, which need none, and a poll reads a
        row per class, minute and latency bucket (the converters cost seconds per 200k rows)."""
        sql, params = rows.query.sql_with_params()
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def _latency(
        self, targets: Sequence[MetricTarget], steps: list[datetime], step_seconds: int
    ) -> dict[str, list[Point]]:
        """One statement: per class and step, the reports' count and sum, and each bucket's total
        as a column of its own (added up in SQL: a poll of 200 classes over an hour would otherwise
        fetch a histogram per report and add them up in Python)."""
        sql, params = self._report_sql(targets, steps, step_seconds, counters=False)
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        result: dict[str, list[Point]] = defaultdict(list)
        for slug, step, n, total, *bucket_counts in rows:
            distribution = Distribution(count=int(n or 0), sum=float(total or 0.0), bucket_counts=tuple(bucket_counts))
            result[slug].append(Point(end=steps[step], value=distribution))
        return dict(result)

    def report_rows(
        self,
        targets: Sequence[MetricTarget],
        *,
        start: datetime,
        end: datetime,
        step_seconds: int = 60,
    ) -> ReportRows | None:
        """On PostgreSQL, the reports' metrics as one SELECT (ReportRows) that the poll folds into
        rollups in the database; the same sums as _counter and _latency, whose points the poll
        would otherwise turn into rows in Python (a second of it for 12,000 minutes). SQLite keeps
        the points (`make run`'s few classes)."""
        if connections[self.using].vendor != "postgresql":
            return None
        if timezone.is_naive(start) or timezone.is_naive(end):
            raise invalid("start and end must be timezone-aware.")
        steps = step_ends(start, end, step_seconds, self._now())
        if not targets or not steps:
            return None
        sql, params = self._report_sql(targets, steps, step_seconds, counters=True)
        return ReportRows(using=self.using, sql=sql, params=tuple(params))

    def _report_sql(
        self, targets: Sequence[MetricTarget], steps: list[datetime], step_seconds: int, *, counters: bool
    ) -> tuple[str, list]:
        """Per class and step with reports: the slug, the step (its index in `steps`; with
        `counters`, on PostgreSQL only, its end and the four counters' sums), the latency count and
        sum, and the bucket totals. On PostgreSQL the float sum adds the reports in a fixed order,
        so the points and the rows folded in SQL (report_rows) carry the same bits. Points come
        oldest first; the folded rows in no order (a sort the fold does not need)."""
        connection = connections[self.using]
        postgresql = connection.vendor == "postgresql"
        quote = connection.ops.quote_name
        base_ms, last_ms = self._window_ms(steps, step_seconds)
        slugs = sorted({t.slug for t in targets})
        # A report's counts are one column (bigint[] on PostgreSQL, 1-based; a JSON array on SQLite):
        # each bucket's total is one sum over the step's reports, no row per bucket to join.
        bucket = "CAST(latency_buckets[{}] AS INTEGER)" if postgresql else "json_extract(latency_buckets, '$[{}]')"
        offset = 1 if postgresql else 0
        counts = ", ".join(f"CAST(COALESCE(SUM({bucket.format(i + offset)}), 0) AS BIGINT)" for i in _BUCKETS)
        latency_sum = "SUM(latency_sum ORDER BY interval_end_ms, id)" if postgresql else "SUM(latency_sum)"
        sums, step = "", "step"
        params: list = [base_ms + 1, step_seconds * 1000, *slugs, base_ms, last_ms]
        if counters:
            sums = "".join(f", CAST(SUM({name}) AS BIGINT)" for name in _COUNTER_FIELDS.values())
            step = "(%s::timestamptz[])[step + 1]"
            params.insert(0, steps)  # the SELECT's, before the FROM's
        # (end_ms - base_ms - 1) // step_ms is the step whose (end - step, end] holds the report's
        # interval end (integer division on both databases), as _step_index.
        sql = f"""
            SELECT slug, {step}{sums}, CAST(SUM(latency_count) AS BIGINT), {latency_sum}, {counts}
              FROM (SELECT id, slug, (interval_end_ms - %s) / %s AS step, interval_end_ms, latency_count, latency_sum,
                           completed, failed, records, tokens, latency_buckets
                      FROM {quote(LocalWorkerReport._meta.db_table)}
                     WHERE slug IN ({", ".join(["%s"] * len(slugs))}) AND interval_end_ms > %s AND interval_end_ms <= %s
                   ) reports
             GROUP BY slug, step
            {"" if counters else "ORDER BY slug, step"}
        """
        return sql, params

    def write_worker_report(self, report: WorkerReport) -> None:
        latency = report.latency
        if tuple(latency.bounds) != LATENCY_BUCKET_BOUNDS:
            raise invalid("Worker reports must use LATENCY_BUCKET_BOUNDS, so histograms merge by adding counts.")
        if len(latency.bucket_counts) != len(LATENCY_BUCKET_BOUNDS) + 1:
            raise invalid(f"A latency histogram has {len(LATENCY_BUCKET_BOUNDS) + 1} buckets.")
        if min(latency.bucket_counts) < 0:  # the column, unlike the bucket rows it replaced, has no CHECK
            raise invalid("A latency histogram's bucket counts cannot be negative.")
        if max(latency.bucket_counts) > REPORT_BUCKET_COUNT_MAX:  # summed as integers (_report_sql)
            raise invalid(f"A latency histogram's bucket counts cannot exceed {REPORT_BUCKET_COUNT_MAX} in one report.")
        if timezone.is_naive(report.interval_start) or timezone.is_naive(report.interval_end):
            raise invalid("A worker report's interval must be timezone-aware.")
        LocalWorkerReport.objects.using(self.using).create(
            slug=report.slug,
            worker_pool=report.worker_pool,
            instance_id=report.instance_id,
            interval_start=report.interval_start,
            interval_end=report.interval_end,
            interval_end_ms=round(report.interval_end.timestamp() * 1000),
            completed=report.completed,
            failed=report.failed,
            records=report.records,
            tokens=report.tokens,
            latency_count=latency.count,
            latency_sum=latency.sum,
            latency_buckets=list(latency.bucket_counts),
        )


def _time_weighted_mean(changes: list[tuple[datetime, int]], lo: datetime, hi: datetime) -> float | None:
    """Mean of a step function (count from each change on) over (lo, hi], counting only the part
    after the first change; None when the pool did not exist yet by `hi`."""
    if not changes or changes[0][0] > hi:
        return None
    weighted = covered = 0.0
    for index, (since, count) in enumerate(changes):
        until = changes[index + 1][0] if index + 1 < len(changes) else hi
        start, stop = max(since, lo), min(until, hi)
        if stop > start:
            seconds = (stop - start).total_seconds()
            weighted += count * seconds
            covered += seconds
    if covered == 0:  # created exactly at hi
        return float([count for since, count in changes if since <= hi][-1])
    return weighted / covered
