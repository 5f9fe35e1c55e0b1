"""Two sides of a migration with minute rollups of known figures."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from tests.factories import CostRatesFactory, WorkloadClassFactory
from workloads.domain import histogram
from workloads.models import MetricRollup


def migration_pair(*, old_runtime: str = "cloud_run_service"):
    rates = CostRatesFactory(name="standard-rates", vcpu_second=Decimal("0.00002"), per_record=Decimal("0.0001"))
    old = WorkloadClassFactory(slug="docs-legacy", runtime=old_runtime, runtime_resource="docs-svc", cost_rates=rates)
    new = WorkloadClassFactory(slug="docs-pool", cost_rates=rates)
    return old, new


def feed(workload_class, *, start: datetime, minutes: int, completed: int, failed: int, latency: float,
         instance_seconds: float, queue_good: bool = True) -> None:  # fmt: skip
    """`minutes` minute rows from `start`, each with these counts, latencies all at `latency` s,
    one record per completion."""
    buckets = histogram.from_values([latency] * completed)
    MetricRollup.objects.bulk_create(
        MetricRollup(
            workload_class=workload_class,
            resolution="minute",
            bucket_start=start + timedelta(minutes=i),
            completed=completed,
            failed=failed,
            records=completed,
            latency_buckets=buckets,
            latency_count=completed,
            latency_sum=latency * completed,
            instance_seconds=instance_seconds,
            instances=instance_seconds / 60,
            queue_age_minutes=1,
            queue_age_good=1 if queue_good else 0,
            fetched_at=start + timedelta(minutes=i + 1),
        )
        for i in range(minutes)
    )
    _hours(workload_class)


def _hours(workload_class) -> None:
    """The hourly rows the poll keeps beside the minutes (long windows read whole hours from them)."""
    from django.db.models import Sum
    from django.db.models.functions import TruncHour

    MetricRollup.objects.filter(workload_class=workload_class, resolution="hour").delete()
    sums = (
        MetricRollup.objects.filter(workload_class=workload_class, resolution="minute")
        .annotate(hour=TruncHour("bucket_start"))
        .values("hour")
        .annotate(
            completed=Sum("completed"),
            failed=Sum("failed"),
            records=Sum("records"),
            instance_seconds=Sum("instance_seconds"),
            queue_age_minutes=Sum("queue_age_minutes"),
            queue_age_good=Sum("queue_age_good"),
            latency_count=Sum("latency_count"),
            latency_sum=Sum("latency_sum"),
        )  # fmt: skip
    )
    for row in sums:
        buckets = histogram.merge(
            MetricRollup.objects.filter(
                workload_class=workload_class,
                resolution="minute",
                bucket_start__gte=row["hour"],
                bucket_start__lt=row["hour"] + timedelta(hours=1),
            ).values_list("latency_buckets", flat=True)
        )
        hour = row.pop("hour")
        MetricRollup.objects.create(
            workload_class=workload_class, resolution="hour", bucket_start=hour, latency_buckets=buckets,
            fetched_at=hour + timedelta(hours=1), **row,
        )  # fmt: skip
