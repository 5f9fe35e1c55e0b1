"""The worker reports folded into minute rollups in SQL (the local provider's ReportRows through
workloads.fastsql.report_fold.report_rollups_fold, on PostgreSQL) must store what the generic path stores (the
same reports read as series() points, turned into cells and rows in Python): every column of the
minute and hourly rollups, the live values (ClassTelemetry) and the running counters with their
cost, byte for byte as PostgreSQL prints them. The same scenario runs twice from the same start,
once each way: gauges from a real local queue and pool beside the reports, a minute without
reports, classes with and without a latency SLO (one threshold on a bucket bound), several reports
in one minute, a partial minute polled again once complete, a report arriving late for a minute
already folded, a report gone before a re-poll (the counters never go down), and rates whose
cost rounds on a half (half to even, as Decimal.quantize)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from tests.factories import CostRatesFactory, SloFactory, WorkloadClassFactory
from workloads.domain import histogram
from workloads.models import ClassCounters, ClassTelemetry, MetricRollup, PollRun, SloKind
from workloads.providers import set_providers
from workloads.providers.base import (
    REPORT_METRICS,
    Distribution,
    MetricTarget,
    OutboundMessage,
    Providers,
    WorkerReport,
)
from workloads.providers.local import LocalMetrics, LocalQueue, LocalWorkerPools
from workloads.providers.local.models import LocalWorkerReport
from workloads.providers.specs import pool_spec, queue_spec
from workloads.services.polling import metrics_poll

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FIRST_POLL = T0 + timedelta(minutes=10, seconds=20)  # the minute 09:10 is under way
SECOND_POLL = T0 + timedelta(minutes=12, seconds=30)


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class CountingMetrics(LocalMetrics):
    """The local provider, its series() calls counted by metric."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.series_calls: list[str] = []
        self.report_rows_offered = 0

    def series(self, metric, targets, **kwargs):
        self.series_calls.append(str(metric))
        return super().series(metric, targets, **kwargs)

    def report_rows(self, targets, **kwargs):
        rows = super().report_rows(targets, **kwargs)
        self.report_rows_offered += rows is not None
        return rows


class GenericMetrics(CountingMetrics):
    """The local provider without the capability: the report metrics come as series() points."""

    def report_rows(self, targets, **kwargs):
        return None


def _classes():
    half_rates = CostRatesFactory(
        name="halves", per_record=Decimal("0.0000015"), per_1k_tokens=Decimal("0.0001"), currency="EUR"
    )
    classes = {
        "slo": WorkloadClassFactory(slug="fold-slo"),
        "bound": WorkloadClassFactory(slug="fold-bound"),
        "plain": WorkloadClassFactory(slug="fold-plain", cost_rates=None),
        "halves": WorkloadClassFactory(slug="fold-halves", cost_rates=half_rates),
        "gauges-only": WorkloadClassFactory(slug="fold-gauges"),
    }
    SloFactory(workload_class=classes["slo"], kind=SloKind.COMPLETION_LATENCY, percentile=95, threshold_seconds=0.5)
    SloFactory(workload_class=classes["slo"], kind=SloKind.QUEUE_AGE, percentile=95, threshold_seconds=60)
    # A threshold on a bucket bound: no share of the bucket it opens.
    SloFactory(
        workload_class=classes["bound"],
        kind=SloKind.COMPLETION_LATENCY,
        percentile=95,
        threshold_seconds=histogram.BOUNDS[12],
    )
    # Gauges for some classes from the real local queue and pools: cells the poll still folds in
    # Python, beside the reports folded in SQL (the instance-seconds carry compute cost).
    clock = Clock(T0)
    queue, pools = LocalQueue(now=clock), LocalWorkerPools(now=clock)
    for key in ("slo", "gauges-only", "halves"):
        spec = queue_spec(classes[key])
        queue.ensure_resources(spec)
        pools.ensure(pool_spec(classes[key]), initial_instances=2)
        clock.now = T0 + timedelta(minutes=3, seconds=17)
        queue.publish(spec, [OutboundMessage(b"waiting")])
        clock.now = T0
    return classes


def _report(wc, end: datetime, *, completed: int, latencies: list[float], instance: str = "w-0", tokens: int = 0):
    counts = histogram.from_values(latencies)
    return WorkerReport(
        slug=wc.slug,
        worker_pool=wc.worker_pool,
        interval_start=end - timedelta(minutes=1),
        interval_end=end,
        completed=completed,
        failed=completed % 3,
        records=completed * 7 + 1,
        tokens=tokens,
        latency=Distribution(count=len(latencies), sum=sum(latencies), bucket_counts=tuple(counts)),
        instance_id=instance,
    )


def _latencies(seed: int, n: int) -> list[float]:
    return [((seed * 7919 + i * 104729) % 1000) / 997.0 * (1 + i % 3) for i in range(n)]


def _scenario(metrics: CountingMetrics, classes: dict) -> None:
    """Reports, two polls, and what happens to the reports between them."""
    clock = metrics._now
    for minute in range(11):
        if minute == 4:
            continue  # a minute without reports
        end = T0 + timedelta(minutes=minute, seconds=50)
        if minute == 10:
            end = T0 + timedelta(minutes=10, seconds=5)  # in the minute under way at the first poll
        for n, key in enumerate(("slo", "bound", "plain", "halves")):
            latencies = _latencies(minute * 10 + n, 3 + (minute + n) % 5)
            metrics.write_worker_report(
                _report(classes[key], end, completed=len(latencies), latencies=latencies, tokens=5 * (minute % 3))
            )
        # Two workers of one class report in the same minute.
        metrics.write_worker_report(
            _report(classes["slo"], end - timedelta(seconds=7), completed=2, latencies=[0.3, 9.7], instance="w-1")
        )
    # A class whose reports carry no latency at all.
    metrics.write_worker_report(
        _report(classes["plain"], T0 + timedelta(minutes=6, seconds=1), completed=0, latencies=[])
    )

    clock.now = FIRST_POLL
    metrics_poll(now=FIRST_POLL, window_minutes=10)

    # A report late for 09:05, already folded; the rest of the minute under way at the first poll;
    # and a report gone (a worker's report replaced by a smaller one): the counters keep theirs.
    metrics.write_worker_report(
        _report(classes["slo"], T0 + timedelta(minutes=5, seconds=55), completed=4, latencies=[0.2, 0.2, 1.1, 40.0])
    )
    metrics.write_worker_report(
        _report(classes["halves"], T0 + timedelta(minutes=10, seconds=40), completed=3, latencies=[0.1], tokens=5)
    )
    LocalWorkerReport.objects.filter(
        slug=classes["slo"].slug, instance_id="w-1", interval_end_ms=_ms(T0, 7, 43)
    ).delete()

    clock.now = SECOND_POLL
    metrics_poll(now=SECOND_POLL, window_minutes=10)


def _ms(base: datetime, minutes: int, seconds: int) -> int:
    return round((base + timedelta(minutes=minutes, seconds=seconds)).timestamp() * 1000)


def _table_text(model, order_by: str, *, without=("id",)) -> list[str]:
    """Every row of the table as PostgreSQL prints it (floats shortest-exact, jsonb canonical),
    without the columns in `without`."""
    columns = [f.column for f in model._meta.concrete_fields if f.column not in without]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT ROW({', '.join(columns)})::text FROM {model._meta.db_table} ORDER BY {order_by}")
        return [row for (row,) in cursor.fetchall()]


def _state() -> dict:
    return {
        "rollups": _table_text(MetricRollup, "workload_class_id, resolution, bucket_start"),
        "telemetry": _table_text(ClassTelemetry, "workload_class_id", without=()),
        "counters": _table_text(ClassCounters, "workload_class_id"),
        "runs": sorted(PollRun.objects.values_list("metric", "ok", "points", "classes", "window_start", "window_end")),
    }


def _run(metrics: CountingMetrics, classes: dict) -> dict:
    for model in (LocalWorkerReport, MetricRollup, ClassTelemetry, ClassCounters, PollRun):
        model.objects.all().delete()
    set_providers(Providers(queue=None, pools=None, metrics=metrics, name="local"))
    try:
        _scenario(metrics, classes)
    finally:
        set_providers(None)
    return _state()


@pytest.mark.django_db
def test_the_sql_fold_stores_what_the_generic_path_stores(settings):
    settings.TELEMETRY_POLL_CURRENT_MINUTE = True
    classes = _classes()
    generic = GenericMetrics(now=Clock(T0))
    folded = CountingMetrics(now=Clock(T0))

    expected = _run(generic, classes)
    got = _run(folded, classes)

    reported = {str(metric) for metric in REPORT_METRICS}
    assert folded.report_rows_offered == 2 and not reported & set(folded.series_calls)  # the SQL path ran
    assert reported <= set(generic.series_calls)  # and the generic one did not take it
    assert got["rollups"] == expected["rollups"]
    assert got["telemetry"] == expected["telemetry"]
    assert got["counters"] == expected["counters"]
    assert got["runs"] == expected["runs"]
    # The scenario reaches what it is meant to: hourly rows, gauges beside reports, SLO judgements,
    # costs rounded from halves, and counters above the rollups after the report that went away.
    rollups = MetricRollup.objects.filter(resolution="minute")
    assert MetricRollup.objects.filter(resolution="hour").exists()
    assert rollups.filter(workload_class=classes["slo"], backlog__isnull=False, completed__gt=0).exists()
    assert rollups.filter(workload_class=classes["slo"], latency_good__gt=0).exists()
    assert not rollups.filter(workload_class=classes["gauges-only"], completed__gt=0).exists()
    assert not rollups.filter(bucket_start=T0 + timedelta(minutes=4), completed__gt=0).exists()
    halves = ClassCounters.objects.get(workload_class=classes["halves"])
    assert halves.cost_currency == "EUR" and halves.cost > 0
    slo = ClassCounters.objects.get(workload_class=classes["slo"])
    assert slo.completed == 2 + sum(rollups.filter(workload_class=classes["slo"]).values_list("completed", flat=True))


@pytest.mark.django_db(databases=["default", "contract_sqlite"])
def test_the_local_provider_offers_report_rows_on_postgresql_only():
    target = MetricTarget(slug="fold-where", subscription="s", dead_letter_subscription="d", worker_pool="p")
    window = {"start": T0, "end": T0 + timedelta(minutes=10)}
    assert LocalMetrics(now=Clock(T0 + timedelta(hours=1))).report_rows([target], **window) is not None
    assert (
        LocalMetrics(using="contract_sqlite", now=Clock(T0 + timedelta(hours=1))).report_rows([target], **window)
        is None
    )
