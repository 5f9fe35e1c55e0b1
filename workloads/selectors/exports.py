"""What `/metrics` exports beyond the fleet overview's live values: each class's running totals,
the pool's target, the holds on it and its last deployment. Four queries whatever the number of
classes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max

from workloads.models import ClassCounters, Deployment, PoolControl, PoolHold
from workloads.models.incidents import OPEN_HOLD_STATES
from workloads.providers.base import LATENCY_BUCKET_BOUNDS

# The exported histogram's upper bounds: every other rollup bound (a factor of 2 from 10 ms to
# about 87 min), so each exported bucket is an exact sum of rollup buckets and a scrape carries
# 21 buckets per class rather than 41.
EXPORTED_LATENCY_BOUNDS: tuple[float, ...] = LATENCY_BUCKET_BOUNDS[::2]
# pause: an operator paused the pool (0 instances); incident: incident mode did; override: an
# operator holds it at a count of their choosing (PoolHold.hold_count).
HOLD_KINDS = ("pause", "incident", "override")


@dataclass(frozen=True)
class ClassSignals:
    counters: ClassCounters | None = None
    target_instances: int | None = None
    holds: frozenset[str] = frozenset()
    last_deployed_at: datetime | None = None


def cumulative_latency_buckets(counts: list[int]) -> list[tuple[float, int]]:
    """(upper bound, observations below it) for each exported bound, then (inf, all): the
    Prometheus histogram's `le` buckets from rollup-style bucket counts. Rollup bucket i holds
    [bounds[i-1], bounds[i]), so observations below bound j are those of buckets 0..j."""
    counts = list(counts)
    buckets, seen, index = [], 0, 0
    for bound in EXPORTED_LATENCY_BOUNDS:
        last = LATENCY_BUCKET_BOUNDS.index(bound)
        while index <= last:
            seen += counts[index] if index < len(counts) else 0
            index += 1
        buckets.append((bound, seen))
    buckets.append((float("inf"), sum(counts)))
    return buckets


def class_signals() -> dict[int, ClassSignals]:
    """{class id: ClassSignals} for every class that has any of them."""
    counters = {row.workload_class_id: row for row in ClassCounters.objects.all()}
    controls = {row.workload_class_id: row for row in PoolControl.objects.all()}
    holds: dict[int, set[str]] = defaultdict(set)
    for class_id, incident_id, hold_count in PoolHold.objects.filter(state__in=OPEN_HOLD_STATES).values_list(
        "workload_class_id", "incident_id", "hold_count"
    ):
        holds[class_id].add("incident" if incident_id is not None else "override" if hold_count else "pause")
    deployed = dict(
        Deployment.objects.order_by()
        .values("workload_class_id")
        .annotate(last=Max("deployed_at"))
        .values_list("workload_class_id", "last")
    )
    return {
        class_id: ClassSignals(
            counters=counters.get(class_id),
            target_instances=controls[class_id].last_set_count if class_id in controls else None,
            holds=frozenset(holds.get(class_id, ())),
            last_deployed_at=deployed.get(class_id),
        )
        for class_id in set(counters) | set(controls) | set(holds) | set(deployed)
    }
