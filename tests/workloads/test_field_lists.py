"""Metric and cost field lists are written once: the rollup's value columns in the groups of
workloads/selectors/rollups.py, a cost line's fields in CostLine (workloads/selectors/cost.py).
These tests fail when a column or field is added in one place and not given its home."""

from dataclasses import fields

from workloads.api.telemetry import COST_COLUMNS, CostLineSerializer
from workloads.models import MetricRollup
from workloads.selectors.cost import CostLine
from workloads.selectors.rollups import (
    GAUGE_COLUMNS,
    LATENCY_COLUMNS,
    METRIC_FIELDS,
    QUEUE_AGE_EVENT_COLUMNS,
    RUNTIME_COLUMNS,
    USAGE_COLUMNS,
)
from workloads.services import rollups

GROUPS = (GAUGE_COLUMNS, USAGE_COLUMNS, QUEUE_AGE_EVENT_COLUMNS, LATENCY_COLUMNS, RUNTIME_COLUMNS)
# A row's key, and what the poll and the fold write about the row itself rather than a metric.
NOT_METRICS = {"id", "workload_class", "resolution", "bucket_start", "fetched_at", "newest_sample_age_seconds"}


def test_every_rollup_value_column_is_in_exactly_one_group():
    grouped = [column for group in GROUPS for column in group]
    assert len(grouped) == len(set(grouped)), "a column is in two groups"
    values = {f.name for f in MetricRollup._meta.concrete_fields} - NOT_METRICS - {"queue_ages"}
    assert set(grouped) == values


def test_what_a_metric_writes_is_grouped():
    grouped = {column for group in GROUPS for column in group}
    for metric, columns in METRIC_FIELDS.items():
        assert set(columns) <= grouped, metric


def test_the_hourly_fold_reads_and_writes_every_grouped_column():
    minute = {name: None for name in rollups._FOLD_FIELDS} | dict.fromkeys(rollups._SUMMED, 0)
    minute |= {"latency_buckets": [], "runtime_latency_buckets": [], "latency_count": 0, "latency_sum": 0.0}
    minute |= {"latency_good": 0.0, "fetched_at": 0, "newest_sample_age_seconds": None}
    hour = rollups.fold_minutes([minute])
    for group in GROUPS:
        assert set(group) <= set(hour), group


def test_the_cost_api_and_csv_carry_every_cost_line_field():
    serialized = list(CostLineSerializer().fields)
    assert COST_COLUMNS == serialized  # the CSV is the JSON's columns, in its order
    stored = {f.name for f in fields(CostLine)}
    derived = {name for name, value in vars(CostLine).items() if isinstance(value, property)}
    assert stored <= set(serialized), stored - set(serialized)
    assert set(serialized) <= stored | derived, set(serialized) - stored - derived
