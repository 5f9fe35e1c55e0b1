"""Deleting a workload class, with its cloud resources or without them.

`resources="keep"` deletes the class only (what happened before: its topics, subscriptions and pool
stay, and the audit event now names them). `resources="delete"` also deletes them, as a
`delete_resources` action with one step per resource and its progress at /actions/<id>/:
subscriptions first (a topic with subscriptions attached is refused by every provider), then the
topics, then the worker pool. Each step is idempotent: a resource already gone counts as deleted,
so a failed action can be requested again for whatever is left.

Two guards, checked when the deletion is asked for and again by each step:
- a resource another class also names is never deleted (choose "keep" for such a class);
- undelivered dead letters (mirrored but neither replayed nor discarded, plus those the last poll
  saw waiting in the dead-letter subscription) would be lost: refused unless `force`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import ProtectedError, Q, RestrictedError

from workloads.errors import ApplicationError, NotFoundError
from workloads.models import Action, ActionKind, ClassTelemetry, DeadLetter, StepState, WorkloadClass
from workloads.models.deadletters import DeadLetterStatus
from workloads.providers import get_providers
from workloads.providers.base import PoolSpec
from workloads.services.actions import ActionHandler, PlannedStep, action_request, register_handler
from workloads.services.audit import audit_event_record, diff
from workloads.services.classes import workload_class_snapshot

KEEP, DELETE = "keep", "delete"
RESOURCE_CHOICES = (KEEP, DELETE)
SUBSCRIPTION, TOPIC, WORKER_POOL = "subscription", "topic", "worker pool"
NAME_FIELDS = (
    "topic",
    "subscription",
    "dead_letter_topic",
    "dead_letter_subscription",
    "completion_topic",
    "worker_pool",
)
UNDELIVERED = (DeadLetterStatus.NEW, DeadLetterStatus.HELD)


@dataclass(frozen=True)
class ClassResource:
    kind: str  # SUBSCRIPTION, TOPIC or WORKER_POOL
    name: str  # the full resource name

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name}


@dataclass
class DeletionPreview:
    """What deleting the class with its resources would do, for the confirmation and the API."""

    slug: str
    resources: list[ClassResource]
    shared: dict[str, list[str]] = field(default_factory=dict)  # resource name -> other classes naming it
    dead_letters_mirrored: int = 0  # new or held in the mirror: neither replayed nor discarded
    dead_letters_waiting: int = 0  # in the dead-letter subscription at the last poll, not mirrored yet

    @property
    def rows(self) -> list[tuple[ClassResource, list[str]]]:
        """Each resource with the other classes that name it (kept), for the confirmation."""
        return [(resource, self.shared.get(resource.name, [])) for resource in self.resources]

    @property
    def dead_letters(self) -> int:
        return self.dead_letters_mirrored + self.dead_letters_waiting

    def as_dict(self) -> dict:
        return {
            "slug": self.slug,
            "resources": [r.as_dict() for r in self.resources],
            "shared": [{"name": name, "classes": classes} for name, classes in self.shared.items()],
            "dead_letters": self.dead_letters,
            "dead_letters_mirrored": self.dead_letters_mirrored,
            "dead_letters_waiting": self.dead_letters_waiting,
        }


def class_resources(workload_class: WorkloadClass) -> list[ClassResource]:
    """The class's resources in the order they can be deleted."""
    resources = [
        ClassResource(SUBSCRIPTION, workload_class.subscription),
        ClassResource(SUBSCRIPTION, workload_class.dead_letter_subscription),
        ClassResource(TOPIC, workload_class.topic),
        ClassResource(TOPIC, workload_class.dead_letter_topic),
    ]
    if workload_class.completion_topic:
        resources.append(ClassResource(TOPIC, workload_class.completion_topic))
    if workload_class.runs_on_worker_pool and workload_class.worker_pool:
        resources.append(ClassResource(WORKER_POOL, workload_class.worker_pool))
    return [r for r in resources if r.name]


def _shared(names: list[str], *, excluding_slug: str) -> dict[str, list[str]]:
    """{resource name: slugs of the other classes that name it} (one query)."""
    query = Q()
    for name_field in NAME_FIELDS:
        query |= Q(**{f"{name_field}__in": names})
    shared: dict[str, list[str]] = {}
    for row in WorkloadClass.objects.filter(query).exclude(slug=excluding_slug).values("slug", *NAME_FIELDS):
        for name in names:
            if name in (row[f] for f in NAME_FIELDS):
                shared.setdefault(name, []).append(row["slug"])
    return {name: sorted(slugs) for name, slugs in shared.items()}


def workload_class_deletion_preview(workload_class: WorkloadClass) -> DeletionPreview:
    resources = class_resources(workload_class)
    telemetry = ClassTelemetry.objects.filter(workload_class=workload_class).first()
    waiting = telemetry.dead_letter_backlog if telemetry and telemetry.dead_letter_backlog else 0
    return DeletionPreview(
        slug=workload_class.slug,
        resources=resources,
        shared=_shared([r.name for r in resources], excluding_slug=workload_class.slug),
        dead_letters_mirrored=DeadLetter.objects.filter(workload_class=workload_class, status__in=UNDELIVERED).count(),
        dead_letters_waiting=int(waiting),
    )


def _refusal(preview: DeletionPreview, *, force: bool) -> ApplicationError | None:
    if preview.shared:
        listed = "; ".join(f"{name} (also {', '.join(slugs)})" for name, slugs in preview.shared.items())
        return ApplicationError(
            f"Some of {preview.slug}'s resources are shared with other classes and are never deleted with it: "
            f"{listed}. Delete the class with resources=keep, or point the other classes elsewhere first.",
            code="shared_resources",
            extra=preview.as_dict(),
        )
    if preview.dead_letters and not force:
        return ApplicationError(
            f"{preview.dead_letters} undelivered dead letters of {preview.slug} would be lost "
            f"({preview.dead_letters_mirrored} neither replayed nor discarded, {preview.dead_letters_waiting} "
            "waiting in the dead-letter subscription): replay or discard them first, or force the deletion.",
            code="dead_letters",
            extra=preview.as_dict(),
        )
    return None


def workload_class_delete(
    *, actor, workload_class: WorkloadClass, resources: str, force: bool = False
) -> Action | None:
    """Delete the class; with resources="delete" also its resources, by the returned action."""
    if resources not in RESOURCE_CHOICES:
        raise ApplicationError(f"resources must be one of {', '.join(RESOURCE_CHOICES)}.", code="invalid", status=400)
    preview = workload_class_deletion_preview(workload_class)
    if resources == DELETE:
        refused = _refusal(preview, force=force)
        if refused is not None:
            raise refused
    with transaction.atomic():
        # Two deletions at once: the second waits here, then finds the class gone (one audit event,
        # at most one action).
        if not WorkloadClass.objects.select_for_update().filter(pk=workload_class.pk).exists():
            raise NotFoundError(f"The class {workload_class.slug} was deleted meanwhile.")
        before = workload_class_snapshot(workload_class)
        audit_event_record(
            actor=actor,
            action="workload_class.delete",
            target=workload_class,
            changes=diff(before, {}),
            workload_class_slug=workload_class.slug,
            extra={
                "resources": resources,
                "force": force,
                "cloud_resources": [r.as_dict() for r in preview.resources],
                "dead_letters": preview.dead_letters,
            },
        )
        action = None
        if resources == DELETE:
            action = action_request(
                kind=ActionKind.DELETE_RESOURCES,
                actor=actor,
                workload_class=workload_class,  # set to null with the class; the slug stays in target
                target=workload_class.slug,
                reason=f"class {workload_class.slug} deleted with its resources",
                parameters={
                    "slug": workload_class.slug,
                    "resources": [r.as_dict() for r in preview.resources],
                    "force": force,
                },
            )
        try:
            workload_class.delete()
        except (ProtectedError, RestrictedError) as exc:
            # A migration plan, or a class routing its events here, still needs it; nothing above
            # (the audit event, the action) survives the rollback.
            referrers = getattr(exc, "protected_objects", None) or getattr(exc, "restricted_objects", ())
            users = sorted({f"{obj._meta.verbose_name} {obj}" for obj in referrers})[:5]
            raise ApplicationError(
                f"{workload_class.slug} cannot be deleted while these still refer to it: {', '.join(users)}. "
                "Finish or delete the migration plans, and stop routing other classes' events to it, first.",
                code="in_use",
            ) from None
        if action is not None:
            action.refresh_from_db()  # its class is null now
    return action


def delete_resources_again(*, actor, action: Action) -> Action:
    """A new delete_resources action for what a finished one did not delete (a step refused for a
    missing IAM role, say, once the role is granted). The class is gone by then, so this is how a
    deletion is completed; `manage.py delete_resources ACTION_ID` calls it."""
    if action.kind != ActionKind.DELETE_RESOURCES:
        raise ApplicationError(f"Action {action.pk} is not a deletion of resources.", code="invalid", status=400)
    if not action.is_final:
        raise ApplicationError(f"Action {action.pk} has not finished yet.", code="not_finished")
    left = [
        {"kind": step.payload.get("kind"), "name": step.key}
        for step in action.steps.exclude(state=StepState.DONE).order_by("position")
    ]
    if not left:
        raise ApplicationError(f"Action {action.pk} deleted every resource; nothing is left.", code="nothing_left")
    slug = action.parameters.get("slug", action.target)
    return action_request(
        kind=ActionKind.DELETE_RESOURCES,
        actor=actor,
        target=slug,
        reason=f"what action {action.pk} left of class {slug}",
        parameters={"slug": slug, "resources": left, "force": action.parameters.get("force", False)},
    )


class DeleteResourcesHandler(ActionHandler):
    """One step per resource; a resource already gone counts as deleted."""

    kind = ActionKind.DELETE_RESOURCES

    def plan(self, action: Action) -> list[PlannedStep]:
        return [PlannedStep(key=r["name"], payload={"kind": r["kind"]}) for r in action.parameters.get("resources", [])]

    def run_step(self, action: Action, step) -> dict:
        slug = action.parameters.get("slug", "")
        name, kind = step.key, step.payload.get("kind")
        # A class created since (or recreated with the same slug) may name it now: leave it be.
        users = _shared([name], excluding_slug="").get(name)
        if users:
            raise ApplicationError(f"{name} is used by {', '.join(users)} now; it was kept.", code="shared_resources")
        providers = get_providers()
        if kind == SUBSCRIPTION:
            deleted = providers.queue.delete_subscription(name)
        elif kind == TOPIC:
            deleted = providers.queue.delete_topic(name)
        elif kind == WORKER_POOL:
            deleted = providers.pools.delete(PoolSpec(slug=slug, worker_pool=name))
        else:
            raise ApplicationError(f"Unknown resource kind {kind!r}.", code="invalid")
        return {"kind": kind, "deleted": True, "already_gone": not deleted}

    def describe_outcome(self, action: Action, *, done: int, failed: int, total: int) -> str:
        return f"{done} of {total} resources of {action.target} deleted"


register_handler(DeleteResourcesHandler())
