"""SLO thresholds as the rollups are judged by them: which minutes and completions count as good
for a class's queue-age and latency SLOs, and re-judging a class's rows when its thresholds change.

Polling (workloads/services/polling.py) judges each new row as it lands; the SLO evaluation
(workloads/services/slo_evaluation.py) notices a changed threshold and re-judges the old ones.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from workloads.domain import slo as slo_math
from workloads.models import ClassTelemetry, MetricRollup, Resolution, Slo, SloKind

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Thresholds:
    """The class's queue-age and latency SLO thresholds (None: no such SLO)."""

    queue_age: float | None = None
    latency: float | None = None


def slo_thresholds(class_ids: Iterable[int] | None = None) -> dict[int, Thresholds]:
    slos = Slo.objects.filter(kind__in=[SloKind.QUEUE_AGE, SloKind.COMPLETION_LATENCY])
    if class_ids is not None:
        slos = slos.filter(workload_class_id__in=list(class_ids))
    found: dict[int, dict] = defaultdict(dict)
    for class_id, kind, threshold in slos.values_list("workload_class_id", "kind", "threshold_seconds"):
        found[class_id]["queue_age" if kind == SloKind.QUEUE_AGE else "latency"] = threshold
    return {class_id: Thresholds(**values) for class_id, values in found.items()}


def queue_age_good(age: float | None, threshold: float | None) -> int:
    return 0 if threshold is None else int(slo_math.queue_age_minute_events(age, threshold).good)


def latency_good(counts, threshold: float | None) -> float:
    return 0.0 if threshold is None else slo_math.latency_events(counts, threshold).good


def slo_good_events_recompute(*, workload_class_id: int, thresholds: Thresholds) -> int:
    """Re-judge every rollup of a class against new SLO thresholds (an SLO was added, changed or
    removed), from the histograms and queue ages the rows keep, and record the thresholds."""
    changed = []
    rows = MetricRollup.objects.filter(workload_class_id=workload_class_id).values_list(
        "pk", "resolution", "oldest_unacked_age_seconds", "queue_ages", "latency_buckets"
    )
    for pk, resolution, age, ages, latency in rows.iterator(chunk_size=2000):
        if resolution == Resolution.HOUR:
            good_minutes = (
                slo_math.queue_age_hour_events(ages, thresholds.queue_age).good if thresholds.queue_age else 0
            )
        else:
            good_minutes = queue_age_good(age, thresholds.queue_age)
        changed.append(
            MetricRollup(
                pk=pk, queue_age_good=int(good_minutes), latency_good=latency_good(latency, thresholds.latency)
            )
        )
    MetricRollup.objects.bulk_update(changed, ["queue_age_good", "latency_good"], batch_size=500)
    ClassTelemetry.objects.filter(workload_class_id=workload_class_id).update(
        queue_age_threshold_seconds=thresholds.queue_age, latency_threshold_seconds=thresholds.latency
    )
    return len(changed)


def slo_thresholds_sync() -> list[int]:
    current = slo_thresholds()
    stale = [
        (state.workload_class_id, current.get(state.workload_class_id, Thresholds()))
        for state in ClassTelemetry.objects.only(
            "workload_class_id", "queue_age_threshold_seconds", "latency_threshold_seconds"
        )
        if Thresholds(state.queue_age_threshold_seconds, state.latency_threshold_seconds)
        != current.get(state.workload_class_id, Thresholds())
    ]
    for class_id, thresholds in stale:
        with transaction.atomic():
            count = slo_good_events_recompute(workload_class_id=class_id, thresholds=thresholds)
        logger.info("SLO thresholds of class %s changed: re-judged %d rollups", class_id, count)
    return [class_id for class_id, _ in stale]
