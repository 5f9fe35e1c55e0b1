"""Running totals per class (ClassCounters) for the Prometheus export: completed, failed,
dead-lettered, records, tokens, instance-seconds, cost and the completion-latency histogram.

Rollups cannot serve as counters: a re-poll replaces a minute's values, downsampling folds
minutes into hours and retention deletes them, so a sum over them would go down. Instead each poll
adds what each minute gained over the values it held before (in the poll's transaction, with the
class's counters row locked, so two overlapping polls never add the same gain twice). A re-poll
that brings a smaller value than before (the provider revised a point down) adds nothing: a
counter never goes down.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from django.db.models import F

from workloads.domain import histogram
from workloads.fastsql.report_fold import FoldedClass
from workloads.fastsql.writes import insert_rows, update_rows
from workloads.models import ClassCounters, MetricRollup, Resolution, WorkloadClass
from workloads.selectors.cost import usage_cost
from workloads.selectors.rollups import USAGE_COLUMNS

# Rollup counter columns that feed a running total of the same name.
SUMMED_COLUMNS = USAGE_COLUMNS
_COUNTER_FIELDS = [field.name for field in ClassCounters._meta.concrete_fields]
_COUNTER_DEFAULTS = {field.name: field.get_default() for field in ClassCounters._meta.concrete_fields}
_OLD_VALUES = ("workload_class_id", "bucket_start", *SUMMED_COLUMNS, "latency_buckets", "latency_sum")


def counters_lock(class_ids: Iterable[int]) -> dict[int, ClassCounters]:
    """The classes' counters rows (created when missing), locked until the transaction ends."""
    class_ids = sorted(set(class_ids))
    # insert_rows, not bulk_create: the ORM's preparing of 200 new rows' 14 fields cost more than
    # the statement (every poll asks for every class, though only a new class lacks its row).
    insert_rows(
        ClassCounters,
        _COUNTER_FIELDS,
        [
            [class_id if name == "workload_class" else _COUNTER_DEFAULTS[name] for name in _COUNTER_FIELDS]
            for class_id in class_ids
        ],
        ignore_conflicts=True,
    )
    # In pk order, so two transactions locking overlapping sets cannot deadlock.
    rows = ClassCounters.objects.select_for_update().filter(workload_class_id__in=class_ids).order_by("pk")
    return {row.workload_class_id: row for row in rows}


def counters_advance(
    cells: dict[tuple[int, datetime], dict], *, now: datetime, folded: Sequence[FoldedClass] = ()
) -> None:
    """Add each polled minute's gain to its class's totals. `cells` maps (class id, minute) to the
    rollup columns the poll is about to write; call it in the poll's transaction, before the
    upsert (it reads the values the minutes hold now). `folded`: what the minutes folded in SQL
    gained (workloads.fastsql.report_fold.report_rollups_fold), worked out there the way this adds up cells."""
    if not cells and not folded:
        return
    counters = counters_lock([class_id for class_id, _bucket in cells] + [f.class_id for f in folded])
    before = _minutes_before(cells, list(counters))
    # Only what pricing reads (usage_cost, _cost_add): the classes' other columns (their payload
    # schemas among them) cost more to load than the rest of this function for 200 classes.
    classes = (
        WorkloadClass.objects.select_related("cost_rates")
        .only("pk", "vcpu_per_instance", "memory_gib_per_instance", "cost_rates")
        .in_bulk(list(counters))
    )
    latency: dict[int, list[int]] = {}  # each class's cumulative histogram, once it gained
    # Each class's latency-sum gains by minute, added up oldest first (as the fold in SQL does), so
    # both ways of folding give the same float.
    latency_sums: dict[int, list[tuple[datetime, float]]] = defaultdict(list)
    for (class_id, bucket), values in cells.items():
        total = counters[class_id]
        old = before.get((class_id, bucket), _NOTHING)
        gained = {
            column: max(0, values[column] - (old.get(column) or 0)) for column in SUMMED_COLUMNS if column in values
        }
        for column, gain in gained.items():
            setattr(total, column, getattr(total, column) + gain)
        if "latency_buckets" in values and _latency_advance(total, latency, values, old):
            latency_sums[class_id].append((bucket, max(0.0, values["latency_sum"] - (old.get("latency_sum") or 0.0))))
        if gained:
            _cost_add(total, classes[class_id], usage_cost(classes[class_id], gained))
        total.updated_at = now
    for class_id, gains in latency_sums.items():
        gain = 0.0
        for _bucket, minute_gain in sorted(gains):
            gain += minute_gain
        counters[class_id].latency_sum += gain
    for fold in folded:
        total = counters[fold.class_id]
        for column, gain in fold.gains.items():
            setattr(total, column, getattr(total, column) + gain)
        if _histogram_add(total, latency, fold.latency):
            total.latency_sum += fold.latency_sum
        _cost_add(total, classes[fold.class_id], fold.records_tokens_cost)
        total.updated_at = now
    for class_id, cumulative in latency.items():
        counters[class_id].latency_buckets = cumulative
    fields = [*SUMMED_COLUMNS, "latency_buckets", "latency_count", "latency_sum", "cost", "cost_currency", "updated_at"]
    # One statement (bulk_update's CASE per field and row took seconds of Python for 200 classes).
    update_rows(ClassCounters, fields, [(row.pk, *(getattr(row, f) for f in fields)) for row in counters.values()])


def _minutes_before(cells: dict[tuple[int, datetime], dict], class_ids: list[int]) -> dict[tuple[int, datetime], dict]:
    """The polled minutes' values as they are before the poll writes them."""
    if not cells:
        return {}
    buckets = [bucket for _class_id, bucket in cells]
    return {
        (row["workload_class_id"], row["bucket_start"]): row
        for row in MetricRollup.objects.filter(
            resolution=Resolution.MINUTE,
            workload_class_id__in=class_ids,
            bucket_start__gte=min(buckets),
            bucket_start__lte=max(buckets),
        ).values(*_OLD_VALUES)
    }


_NOTHING: dict = {}


def _latency_advance(total: ClassCounters, latency: dict[int, list[int]], values: dict, old: dict) -> bool:
    """Add the minute's histogram gain (bucket by bucket, never below zero) to the class's
    cumulative histogram in `latency`; whether it gained anything. The common cases skip the
    per-bucket Python: a minute seen for the first time gains its whole histogram, one polled
    again unchanged gains nothing (12,000 minutes a poll)."""
    new_counts = values["latency_buckets"] or []
    old_counts = old.get("latency_buckets") or []
    if not new_counts or new_counts == old_counts:
        return False
    if not old_counts and min(new_counts) >= 0:
        gains = new_counts
    else:
        gains = [max(0, count - (old_counts[i] if i < len(old_counts) else 0)) for i, count in enumerate(new_counts)]
    return _histogram_add(total, latency, gains)


def _histogram_add(total: ClassCounters, latency: dict[int, list[int]], gains: list[int]) -> bool:
    """Add bucket gains to the class's cumulative histogram and its count; whether there were any."""
    gained = sum(gains)
    if not gained:
        return False
    cumulative = latency.get(total.workload_class_id)
    if cumulative is None:
        cumulative = latency[total.workload_class_id] = list(total.latency_buckets) or histogram.empty()
    if len(cumulative) == len(gains):
        cumulative[:] = map(operator.add, cumulative, gains)
    else:
        histogram.add_into(cumulative, gains)
    # The count is the buckets' sum, so the exported _count always equals the +Inf bucket.
    total.latency_count += gained
    return True


def _cost_add(total: ClassCounters, workload_class: WorkloadClass, cost: Decimal | None) -> None:
    """Add a cost priced at the class's rates (None: it has none) to its total."""
    if cost is None:
        return
    currency = workload_class.cost_rates.currency
    if total.cost_currency != currency:
        # A class moved to rates in another currency: its old total cannot be added to.
        total.cost, total.cost_currency = Decimal(0), currency
    total.cost += cost


def dead_letters_counted(*, workload_class_id: int, count: int) -> None:
    """Add `count` newly mirrored dead letters to the class's total (in the mirror's transaction,
    after counters_lock)."""
    if count <= 0:
        return
    ClassCounters.objects.filter(workload_class_id=workload_class_id).update(dead_lettered=F("dead_lettered") + count)
