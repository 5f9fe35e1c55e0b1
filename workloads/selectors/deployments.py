"""Reading deployments: a class's recent ones (the API, the class page's marker list and the
comparison screen's "before vs after" choices) and those inside a window (chart markers, the
controller's and the alerts' reasons). Each reads on the (class, deployed_at) index."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from workloads.models import Deployment, WorkloadClass

MAX_DEPLOYMENTS = 100


def class_deployments(
    *, workload_class: WorkloadClass, start: datetime | None = None, end: datetime | None = None, limit: int = 50
) -> list[Deployment]:
    """The class's deployments in [start, end] (either open), newest first, at most `limit`."""
    rows = Deployment.objects.filter(workload_class=workload_class)
    if start is not None:
        rows = rows.filter(deployed_at__gte=start)
    if end is not None:
        rows = rows.filter(deployed_at__lte=end)
    return list(rows.order_by("-deployed_at", "-id")[: min(limit, MAX_DEPLOYMENTS)])


def latest_deployments(*, class_ids: Iterable[int], start: datetime, end: datetime) -> dict[int, Deployment]:
    """{class id: its newest deployment in [start, end]} for the classes that had one."""
    newest: dict[int, Deployment] = {}
    for deployment in Deployment.objects.filter(
        workload_class_id__in=list(class_ids), deployed_at__gte=start, deployed_at__lte=end
    ).order_by("deployed_at", "id"):
        newest[deployment.workload_class_id] = deployment
    return newest
