"""The chart JSON the class page embeds: thresholds from SLOs, actions as markers, units, ranges."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from dashboards.charts import CHART_RANGES, build_charts, chart_range, seconds_label, slo_summary
from tests.factories import CostRatesFactory, SloFactory, WorkloadClassFactory
from workloads.models import AuditEvent
from workloads.selectors.fleet import SERIES_KEYS, ClassSeries

END = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
START = END - timedelta(hours=6)


def _series(**values):
    x = [int((START + timedelta(hours=h)).timestamp()) for h in range(1, 7)]
    full = {key: [None] * len(x) for key in SERIES_KEYS}
    full.update(values)
    return ClassSeries(x=x, values=full, fetched_at=END, newest_sample_at=END - timedelta(minutes=3))


def test_thresholds_come_from_the_slos_and_units_from_the_rates(db):
    wc = WorkloadClassFactory(cost_rates=CostRatesFactory(name="eur-rates", currency="EUR"))
    SloFactory(workload_class=wc, kind="queue_age", percentile=Decimal("95"), threshold_seconds=120)
    SloFactory(workload_class=wc, kind="completion_latency", percentile=Decimal("99.5"), threshold_seconds=0.25)
    charts = {c.key: c for c in build_charts(workload_class=wc, series=_series(), events=[], start=START, end=END)}
    assert list(charts) == ["queue-age", "backlog", "latency", "throughput", "instances", "cost"]
    assert charts["queue-age"].threshold == {"value": 120.0, "label": "SLO p95 < 2 min"}
    assert charts["latency"].threshold == {"value": 0.25, "label": "SLO p99.5 < 250 ms"}
    assert charts["backlog"].threshold is None
    assert charts["cost"].unit == "EUR" and charts["queue-age"].unit == "s"
    assert [s["label"] for s in charts["latency"].series] == ["p50", "p95", "p99"]


def test_a_class_without_slos_or_rates_still_charts(db):
    wc = WorkloadClassFactory(cost_rates=None)
    charts = build_charts(workload_class=wc, series=_series(), events=[], start=START, end=END)
    assert all(c.threshold is None for c in charts)
    assert charts[-1].unit == "USD"


def test_actions_in_the_range_become_markers_oldest_first(db):
    wc = WorkloadClassFactory()
    inside = [
        AuditEvent(occurred_at=END - timedelta(hours=1), actor_label="ada", action="workload_class.update"),
        AuditEvent(occurred_at=START + timedelta(minutes=5), actor_label="otto", action="pool.scale"),
    ]
    outside = AuditEvent(occurred_at=START - timedelta(minutes=1), actor_label="old", action="workload_class.update")
    chart = build_charts(workload_class=wc, series=_series(), events=[*inside, outside], start=START, end=END)[0]
    assert chart.markers == [
        {"t": int(inside[1].occurred_at.timestamp()), "label": "pool: scale (otto)", "when": "Wed 04 Mar 06:05 UTC"},
        {
            "t": int(inside[0].occurred_at.timestamp()),
            "label": "settings changed (ada)",
            "when": "Wed 04 Mar 11:00 UTC",
        },
    ]


def test_the_payload_is_plain_json_with_the_data_age(db):
    wc = WorkloadClassFactory()
    series = _series(queue_age=[1.0, None, 3.0, 4.5, None, 2.0])
    chart = build_charts(workload_class=wc, series=series, events=[], start=START, end=END)[0]
    payload = json.loads(json.dumps(chart.payload()))
    assert payload["x"] == series.x and payload["series"][0]["values"] == [1.0, None, 3.0, 4.5, None, 2.0]
    assert payload["start"] == int(START.timestamp()) and payload["end"] == int(END.timestamp())
    assert payload["newest_sample_at"] == "2026-03-04T11:57:00+00:00"
    assert payload["fetched_at"] == "2026-03-04T12:00:00+00:00"
    assert chart.script_id == "chart-data-queue-age"
    assert chart.summary == "Queue age: Oldest unacked latest 2"
    assert not chart.is_empty


def test_a_chart_with_only_gaps_is_empty(db):
    wc = WorkloadClassFactory()
    charts = build_charts(workload_class=wc, series=_series(), events=[], start=START, end=END)
    assert all(c.is_empty for c in charts)
    no_steps = ClassSeries(x=[], values={key: [] for key in SERIES_KEYS})
    assert build_charts(workload_class=wc, series=no_steps, events=[], start=START, end=END)[0].is_empty


def test_ranges_bound_the_number_of_points():
    assert [r.key for r in CHART_RANGES] == ["1h", "6h", "24h", "7d", "30d"]
    for r in CHART_RANGES:
        assert r.span.total_seconds() / r.step_seconds <= 720, r.key
    assert chart_range("7d").key == "7d"
    assert chart_range("bogus").key == chart_range(None).key == "6h"


def test_labels_read_naturally():
    assert [seconds_label(s) for s in (0.25, 5, 90, 300, 5400, 21600, 86400, 172800)] == [
        "250 ms",
        "5 s",
        "90 s",
        "5 min",
        "90 min",
        "6 h",
        "1 d",
        "2 d",
    ]
    slo = SloFactory.build(kind="success_ratio", target_percent=Decimal("99.9000"))
    assert slo_summary(slo) == "99.9 % succeed"
