"""The chart JSON the class page embeds: series from telemetry, thresholds from SLOs, actions and
configuration changes as markers, units, ranges."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from dashboards.charts import (
    CHART_RANGES,
    build_charts,
    chart_markers,
    chart_range,
    seconds_label,
    slo_summary,
)
from tests.factories import CostRatesFactory, SloFactory, WorkloadClassFactory
from workloads.models import Action, AuditEvent
from workloads.selectors import series as series_selectors
from workloads.selectors.series import SeriesSet
from workloads.selectors.slos import SloCard
from workloads.selectors.telemetry import ClassDetailTelemetry

END = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
START = END - timedelta(hours=6)
STEP = 3600


def _detail(wc, step=STEP, **values) -> ClassDetailTelemetry:
    timestamps = list(range(int(START.timestamp()), int(END.timestamp()), step))
    full = {name: [None] * len(timestamps) for name in series_selectors.SERIES}
    full.update(values)
    series = SeriesSet(
        start=START,
        end=END,
        step_seconds=step,
        resolution="hour",
        timestamps=timestamps,
        values=full,
        units={name: unit for name, (unit, _how) in series_selectors.SERIES.items()},
        fetched_at=END,
        newest_sample_at=END - timedelta(minutes=3),
    )
    cards = [SloCard(slo=slo, status=None) for slo in wc.slos.all()]
    return ClassDetailTelemetry("6h", series, {}, cards, [], [], None)


def test_thresholds_come_from_the_slos_and_units_from_the_rates(db):
    wc = WorkloadClassFactory(cost_rates=CostRatesFactory(name="eur-rates", currency="EUR"))
    SloFactory(workload_class=wc, kind="queue_age", percentile=Decimal("95"), threshold_seconds=120)
    SloFactory(workload_class=wc, kind="completion_latency", percentile=Decimal("99.5"), threshold_seconds=0.25)
    charts = {c.key: c for c in build_charts(workload_class=wc, detail=_detail(wc), markers=[])}
    assert list(charts) == ["queue-age", "backlog", "latency", "throughput", "instances", "cost"]
    assert charts["queue-age"].threshold == {"value": 120.0, "label": "SLO p95 < 2 min"}
    assert charts["latency"].threshold == {"value": 0.25, "label": "SLO p99.5 < 250 ms"}
    assert charts["backlog"].threshold is None
    assert charts["cost"].unit == "EUR" and charts["queue-age"].unit == "s"
    assert charts["cost"].title == "Cost per hour"  # a rate, whatever the step
    assert [s["label"] for s in charts["latency"].series] == ["p50", "p95", "p99"]
    assert [s["label"] for s in charts["backlog"].series] == ["Undelivered", "Dead letters"]


def test_a_class_without_slos_or_rates_still_charts(db):
    wc = WorkloadClassFactory(cost_rates=None)
    charts = build_charts(workload_class=wc, detail=_detail(wc), markers=[])
    assert all(c.threshold is None for c in charts)
    assert charts[-1].unit == "USD"


def test_counters_are_drawn_per_minute_whatever_the_step(db):
    wc = WorkloadClassFactory()
    hourly = _detail(wc, completed=[600.0, None, 120.0, 0.0, 60.0, 6.0], failed=[6.0] + [None] * 5)
    throughput = next(c for c in build_charts(workload_class=wc, detail=hourly, markers=[]) if c.key == "throughput")
    assert throughput.unit == "per_min"
    assert throughput.series[0]["values"] == [10.0, None, 2.0, 0.0, 1.0, 0.1]  # 600 jobs an hour = 10/min
    assert throughput.series[1]["values"][0] == 0.1


def test_actions_and_config_changes_in_the_range_become_markers_oldest_first(db):
    long_action = Action(
        pk=7,
        kind="replay",
        state="succeeded",
        requested_by_label="otto",
        created_at=START + timedelta(minutes=5),
        finished_at=START + timedelta(minutes=50),
    )
    quick_action = Action(
        pk=8,
        kind="scale",
        state="failed",
        requested_by_label="system",
        created_at=END - timedelta(minutes=30),
        finished_at=END - timedelta(minutes=29, seconds=50),
    )
    running = Action(
        pk=9, kind="pause", state="running", requested_by_label="ada", created_at=END - timedelta(minutes=1)
    )
    changes = [
        AuditEvent(occurred_at=END - timedelta(hours=1), actor_label="ada", action="workload_class.update"),
        AuditEvent(occurred_at=START - timedelta(minutes=1), actor_label="old", action="workload_class.update"),
    ]
    markers = chart_markers(actions=[running, quick_action, long_action], changes=changes, start=START, end=END)
    assert markers == [
        {"t": int(long_action.created_at.timestamp()), "label": "replay dead letters #7 (otto, succeeded)",
         "when": "Wed 04 Mar 06:05 UTC", "at": long_action.created_at.isoformat(), "kind": "action"},
        {"t": int(long_action.finished_at.timestamp()), "label": "replay dead letters #7 succeeded",
         "when": "Wed 04 Mar 06:50 UTC", "at": long_action.finished_at.isoformat(), "kind": "action"},
        {"t": int((END - timedelta(hours=1)).timestamp()), "label": "settings changed (ada)",
         "when": "Wed 04 Mar 11:00 UTC", "at": (END - timedelta(hours=1)).isoformat(), "kind": "change"},
        # A quick action is one marker that says how it ended.
        {"t": int(quick_action.created_at.timestamp()), "label": "scale #8 (system, failed)",
         "when": "Wed 04 Mar 11:30 UTC", "at": quick_action.created_at.isoformat(), "kind": "action"},
        {"t": int(running.created_at.timestamp()), "label": "pause #9 (ada, running)",
         "when": "Wed 04 Mar 11:59 UTC", "at": running.created_at.isoformat(), "kind": "action"},
    ]  # fmt: skip


def test_the_payload_is_plain_json_with_the_data_age(db):
    wc = WorkloadClassFactory()
    detail = _detail(wc, oldest_unacked_age=[1.0, None, 3.0, 4.5, None, 2.0])
    marker = {"t": int(END.timestamp()) + 20, "label": "x", "when": "", "kind": "action"}
    chart = build_charts(workload_class=wc, detail=detail, markers=[marker], end=END + timedelta(seconds=20))[0]
    payload = json.loads(json.dumps(chart.payload()))
    assert payload["x"] == detail.series.timestamps
    assert payload["series"][0]["values"] == [1.0, None, 3.0, 4.5, None, 2.0]
    # The axis runs to now, past the last whole step, so a marker from seconds ago is on it.
    assert payload["start"] == int(START.timestamp()) and payload["end"] == int(END.timestamp()) + 20
    assert payload["markers"] == [marker]
    assert payload["newest_sample_at"] == "2026-03-04T11:57:00+00:00"
    assert payload["fetched_at"] == "2026-03-04T12:00:00+00:00"
    assert chart.script_id == "chart-data-queue-age"
    assert chart.summary == "Queue age: Oldest unacked latest 2"
    assert not chart.is_empty


def test_a_chart_with_only_gaps_is_empty(db):
    wc = WorkloadClassFactory()
    assert all(c.is_empty for c in build_charts(workload_class=wc, detail=_detail(wc), markers=[]))


def test_ranges_are_the_telemetry_selectors_and_bound_the_number_of_points():
    assert [r.key for r in CHART_RANGES] == ["1h", "6h", "24h", "7d", "30d"]
    for r in CHART_RANGES:
        assert (r.span, r.step_seconds) == series_selectors.CHART_RANGES[r.key]
        assert r.span.total_seconds() / r.step_seconds <= 300, r.key
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


def test_a_last_step_cut_short_by_the_range_end_is_a_rate_over_what_it_covers(db):
    wc = WorkloadClassFactory()
    # 2-hour steps; the last one covers 1 hour.
    detail = _detail(wc, step=7200, completed=[240.0, 240.0, 60.0], cost=[2.0, 2.0, 0.5])
    detail.series.timestamps = [int(START.timestamp()) + n * 7200 for n in range(2)] + [int(END.timestamp()) - 3600]
    charts = {c.key: c for c in build_charts(workload_class=wc, detail=detail, markers=[])}
    assert charts["throughput"].series[0]["values"] == [2.0, 2.0, 1.0]  # per minute
    assert charts["cost"].series[0]["values"] == [1.0, 1.0, 0.5]  # per hour


def test_instances_are_drawn_as_whole_counts_and_say_how(db):
    wc = WorkloadClassFactory()
    # Minute rows hold a minute's time-weighted mean: 0.8 means one instance ran part of it.
    minutes = SeriesSet(
        start=START,
        end=START + timedelta(minutes=5),
        step_seconds=60,
        resolution="minute",
        timestamps=[int(START.timestamp()) + 60 * n for n in range(5)],
        values={
            **{name: [None] * 5 for name in series_selectors.SERIES},
            "instances": [0.8, 1.6, None, 2.0000000001, 0.0],
        },
        units={name: unit for name, (unit, _how) in series_selectors.SERIES.items()},
    )
    assert minutes.instance_counts == [1, 2, None, 2, 0] and minutes.instance_counts_basis == "peak"
    detail = ClassDetailTelemetry("1h", minutes, {}, [], [], [], None)
    chart = next(c for c in build_charts(workload_class=wc, detail=detail, markers=[]) if c.key == "instances")
    assert chart.series == [{"label": "Instances (most running at once, per minute)", "values": [1, 2, None, 2, 0]}]
    # An hour's mean says nothing of its peak: hourly steps are the mean, rounded, and say so.
    hourly = build_charts(workload_class=wc, detail=_detail(wc, instances=[0.4, 1.5, 2.6, None, 3.0, 1.0]), markers=[])
    chart = next(c for c in hourly if c.key == "instances")
    assert chart.series == [{"label": "Instances (mean, rounded, per hour)", "values": [0, 2, 3, None, 3, 1]}]


def test_the_time_axis_starts_where_a_young_classs_data_or_first_marker_does(db):
    wc = WorkloadClassFactory()
    stamps = list(range(int(START.timestamp()), int(END.timestamp()), STEP))

    def start_of(markers=(), **values):
        return build_charts(workload_class=wc, detail=_detail(wc, **values), markers=list(markers))[0].start

    assert start_of() == START  # nothing to fit: the whole range
    assert start_of(backlog=[None, None, None, None, 5.0, 6.0]) == datetime.fromtimestamp(stamps[4], UTC)
    earlier = {"t": stamps[3] + 60, "label": "class created", "when": "", "kind": "change"}
    assert start_of([earlier], backlog=[None, None, None, None, 5.0, 6.0]).timestamp() == stamps[3] + 60
    assert start_of(backlog=[1.0] + [None] * 5) == START  # data from the start: the whole range
    # One point a minute old still gets a readable axis, not a few seconds' worth.
    assert start_of([{"t": int(END.timestamp()) - 30, "label": "x", "when": "", "kind": "change"}]) == END - timedelta(
        minutes=10
    )
