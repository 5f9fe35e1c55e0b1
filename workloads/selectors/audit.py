"""Read side of the audit log screen."""

from datetime import datetime

from django.db.models import Q, QuerySet

from workloads.models import ActionKind, AuditEvent, WorkloadClass


def audit_events(
    *,
    actor: str = "",
    action: str = "",
    workload_class_slug: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
    environment_ids: set[int] | None = None,
) -> QuerySet[AuditEvent]:
    """Audit events matching every given filter, newest first. `actor` matches part of the actor's
    label (a username, or "system"); `action` matches exactly or as a prefix ("action.scale");
    `environment_ids` (None: everywhere) keeps the events of those environments' classes."""
    events = AuditEvent.objects.all()
    if environment_ids is not None:
        events = events.filter(events_in_environments(environment_ids))
    if actor:
        events = events.filter(actor_label__icontains=actor)
    if action:
        events = events.filter(action__startswith=action)
    if workload_class_slug:
        events = events.filter(workload_class_slug=workload_class_slug)
    if start is not None:
        events = events.filter(occurred_at__gte=start)
    if end is not None:
        events = events.filter(occurred_at__lt=end)
    return events.order_by("-occurred_at", "-id")


def events_in_environments(environment_ids) -> Q:
    """The events of the classes now in these environments. An event names its class by slug only
    (the trail outlives the class), so the events of a deleted class, and those of no class (users,
    tokens, environments), belong to no environment: only a role of one's own reads them."""
    slugs = WorkloadClass.objects.filter(environment_id__in=environment_ids).values("slug")
    return Q(workload_class_slug__in=slugs)


# Suggestions for the action filter: the actions the services write. A list in code rather than a
# DISTINCT over the audit table, whose cost would grow with history; other actions still match.
KNOWN_ACTIONS = (
    "workload_class.create",
    "workload_class.update",
    "workload_class.delete",
    "cost_rates.create",
    "cost_rates.update",
    "cost_rates.delete",
    "api_token.issue",
    "api_token.revoke",
    "user.create",
    "user.set_role",
    *(f"action.{kind}" for kind in ActionKind.values),
)
