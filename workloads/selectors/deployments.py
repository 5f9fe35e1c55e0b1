"""Reading deployments: a class's recent ones (the API, the class page's marker list and the
comparison's "before vs after deploy X" periods) and those inside a window (chart markers, the
controller's and the alerts' reasons). Each reads on the (class, deployed_at) index."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from workloads.models import Deployment, WorkloadClass
from workloads.selectors.comparison import Period

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


MAX_BOUNDARY_HOURS = 24


def deployment_periods(deployment: Deployment, *, hours: int, now: datetime) -> tuple[Period, Period]:
    """The `hours` before the deployment and the `hours` after it (cut at now): a comparison's A
    and B. ValueError when the deployment is not in the past yet or `hours` is out of range."""
    if not 1 <= hours <= MAX_BOUNDARY_HOURS:
        raise ValueError(f"hours must be from 1 to {MAX_BOUNDARY_HOURS}.")
    at = deployment.deployed_at
    if at >= now:
        raise ValueError("The deployment has not happened yet: there is no 'after' to compare.")
    span = timedelta(hours=hours)
    wc = deployment.workload_class
    return Period(wc, at - span, at), Period(wc, at, min(at + span, now))


def deployment_note(deployment: Deployment | None, *, now: datetime) -> str:
    """'deploy v2.4.1 12 min ago' for a reason or a message; '' without one."""
    if deployment is None:
        return ""
    minutes = max(0, int((now - deployment.deployed_at).total_seconds() // 60))
    return f"deploy {deployment.label} {minutes} min ago"
