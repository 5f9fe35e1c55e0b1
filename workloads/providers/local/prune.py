"""Retention of the local provider's metric history: the worker reports its metrics are computed
from and the pools' instance-count history. (The queue's own tables: `local_queue_prune`.)

Cloud Monitoring keeps points for weeks and then lets them go; so do these, after the retention the
caller gives (settings LOCAL_WORKER_REPORT_RETENTION_DAYS and LOCAL_POOL_CHANGE_RETENTION_DAYS).
"""

from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q

from workloads.batch_delete import DEFAULT_BATCH_SIZE, delete_in_batches
from workloads.providers.local.models import LocalPoolChange, LocalWorkerReport


def local_worker_reports_prune(
    *, now: datetime, retention: timedelta, using: str = "default", batch_size: int = DEFAULT_BATCH_SIZE
) -> int:
    """Delete worker reports whose interval ended before the retention."""
    old = LocalWorkerReport.objects.using(using).filter(interval_end__lt=now - retention)
    return delete_in_batches(old, batch_size=batch_size)


def local_pool_changes_prune(
    *, now: datetime, retention: timedelta, using: str = "default", batch_size: int = DEFAULT_BATCH_SIZE
) -> int:
    """Delete instance-count changes older than the retention, except each pool's newest one before
    it: that one says how many instances ran when the retained history begins."""
    cutoff = now - retention
    newer_before_cutoff = LocalPoolChange.objects.filter(pool=OuterRef("pool"), changed_at__lt=cutoff).filter(
        Q(changed_at__gt=OuterRef("changed_at")) | Q(changed_at=OuterRef("changed_at"), pk__gt=OuterRef("pk"))
    )
    superseded = LocalPoolChange.objects.using(using).filter(changed_at__lt=cutoff).filter(Exists(newer_before_cutoff))
    return delete_in_batches(superseded, batch_size=batch_size)
