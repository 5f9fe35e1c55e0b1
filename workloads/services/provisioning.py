"""Provision a class's cloud resources: its Pub/Sub topics and subscriptions, and its worker pool.

Idempotent: existing resources are left alone and differences reported as drift, unless `apply`
asks to bring them in line. On the local provider this creates the queue tables' rows and the
local pool (at the class's minimum instance count); on Google Cloud it creates the Pub/Sub
resources and checks that the worker pool (deployed with gcloud, see docs/operations.md) exists.
"""

from dataclasses import dataclass, field

from django.db import transaction

from workloads.errors import ApplicationError
from workloads.models import Action, ActionKind, ActionState, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.base import ProviderError
from workloads.providers.specs import pool_spec, queue_spec
from workloads.services.actions import ActionHandler, PlannedStep, action_request, register_handler
from workloads.services.audit import audit_event_record


@dataclass
class ProvisionReport:
    slug: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)  # differences still there after this run
    changed: list[str] = field(default_factory=list)  # differences this run fixed (apply)
    pool_instances: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def workload_class_provision(*, workload_class: WorkloadClass, actor, apply: bool = False) -> ProvisionReport:
    providers = get_providers()
    report = ProvisionReport(slug=workload_class.slug)
    try:
        spec = queue_spec(workload_class)
        ensured = providers.queue.ensure_resources(spec, apply=apply)
        report.created = list(ensured.created)
        report.updated = list(ensured.updated)
        remaining = ensured.drift
        if ensured.updated:
            # Read back what apply could not change (message ordering on Pub/Sub), so the report
            # says what changed instead of repeating every difference it found.
            remaining = providers.queue.ensure_resources(spec, apply=False).drift
            left = {(d.resource, d.setting) for d in remaining}
            report.changed = [
                f"{d.resource} {d.setting}: {d.actual} -> {d.expected}"
                for d in ensured.drift
                if (d.resource, d.setting) not in left
            ]
        report.drift = [f"{d.resource} {d.setting}: want {d.expected}, found {d.actual}" for d in remaining]
        if workload_class.runs_on_worker_pool:  # an observed runtime is deployed by its team
            state = providers.pools.ensure(pool_spec(workload_class), initial_instances=workload_class.min_instances)
            report.pool_instances = state.instance_count
    except ProviderError as exc:
        report.error = exc.message
    if report.created or report.updated or report.error:
        with transaction.atomic():
            audit_event_record(
                actor=actor,
                action="workload_class.provision",
                target=workload_class,
                workload_class_slug=workload_class.slug,
                result="success" if report.ok else "failure",
                extra={
                    "created": report.created,
                    "updated": report.updated,
                    "changed": report.changed,
                    "drift": report.drift,
                    "error": report.error,
                },
            )
    return report


# --- Provisioning as part of the class's lifecycle -------------------------------------------------
def cloud_specs(workload_class: WorkloadClass) -> tuple:
    """What of a class lives in the cloud: a change here needs provisioning."""
    pool = pool_spec(workload_class) if workload_class.runs_on_worker_pool else None
    return queue_spec(workload_class), pool


def workload_class_provision_request(*, actor, workload_class: WorkloadClass, reason: str) -> Action:
    """An `ensure_resources` action (audited, with progress at /actions/<id>/), run by a worker."""
    return action_request(
        kind=ActionKind.ENSURE_RESOURCES,
        actor=actor,
        workload_class=workload_class,
        target=workload_class.slug,
        reason=reason,
    )


def workload_class_provision_if_changed(*, actor, workload_class: WorkloadClass, before: tuple | None) -> Action | None:
    """After a create (`before` None) or an update: provision when what lives in the cloud changed."""
    if before is not None and before == cloud_specs(workload_class):
        return None
    reason = "class created" if before is None else "cloud settings changed"
    return workload_class_provision_request(actor=actor, workload_class=workload_class, reason=reason)


def provisioning_in_progress(workload_class: WorkloadClass) -> Action | None:
    return (
        Action.objects.filter(
            workload_class=workload_class,
            kind=ActionKind.ENSURE_RESOURCES,
            state__in=[ActionState.PENDING, ActionState.RUNNING],
        )
        .order_by("-pk")
        .first()
    )


class ProvisionHandler(ActionHandler):
    """One step: create the class's topics, subscriptions and pool, or bring them in line."""

    kind = ActionKind.ENSURE_RESOURCES

    def plan(self, action: Action) -> list[PlannedStep]:
        if action.workload_class is None:
            raise ApplicationError("The class was deleted before its resources were provisioned.", code="gone")
        return [PlannedStep(key=action.workload_class.slug)]

    def run_step(self, action: Action, step) -> dict:
        if action.workload_class is None:
            raise ApplicationError("The class was deleted before its resources were provisioned.", code="gone")
        report = workload_class_provision(workload_class=action.workload_class, actor=action.requested_by, apply=True)
        if report.error:
            raise ProviderError(report.error, permanent=True)
        return {
            "created": report.created,
            "updated": report.updated,
            "changed": report.changed,
            "drift": report.drift,
            "pool_instances": report.pool_instances,
        }


register_handler(ProvisionHandler())
