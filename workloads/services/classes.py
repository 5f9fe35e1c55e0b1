"""Create, change and delete workload classes, their SLOs, schedules and cost rates.

Validation lives on the models (`full_clean`); these functions add what spans rows: nested
children matched by their natural keys, the stable slug, and one audit row per change.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from workloads.errors import ApplicationError
from workloads.models import CostRates, SchedulePolicy, Slo, WorkloadClass
from workloads.services.audit import audit_event_record, diff, snapshot
from workloads.services.backfill import backfill_on_register
from workloads.services.provisioning import cloud_specs, workload_class_provision_if_changed

# Children are matched by natural key, so updating a class keeps their ids (alert history
# refers to SLOs) and a PUT that repeats a child unchanged changes nothing.
_CHILDREN = {
    "slos": (Slo, "kind"),
    "schedules": (SchedulePolicy, "name"),
}


def workload_class_snapshot(workload_class: WorkloadClass) -> dict:
    data = snapshot(workload_class)
    for relation, (_model, key) in _CHILDREN.items():
        children = getattr(workload_class, relation).all()
        data[relation] = sorted(
            (snapshot(child, exclude={"workload_class"}) for child in children), key=lambda c: str(c[key])
        )
    return data


def _prefixed(error: ValidationError, prefix: str) -> ValidationError:
    if hasattr(error, "error_dict"):
        return ValidationError(
            {f"{prefix}.{field}" if field != "__all__" else prefix: msgs for field, msgs in error.error_dict.items()}
        )
    return ValidationError({prefix: error.messages})


def _sync_children(workload_class: WorkloadClass, relation: str, items: list[dict]) -> None:
    """Make the class's children exactly `items`: update matches, create new, delete the rest."""
    model, key = _CHILDREN[relation]
    existing = {getattr(child, key): child for child in getattr(workload_class, relation).all()}
    errors: dict[str, list] = {}
    seen = set()
    to_save = []
    for index, item in enumerate(items):
        natural_key = item.get(key)
        if natural_key in seen:
            errors[f"{relation}.{index}.{key}"] = [f"Duplicate {key} {natural_key!r}: each must be unique."]
            continue
        seen.add(natural_key)
        child = existing.get(natural_key) or model(workload_class=workload_class)
        before = snapshot(child) if child.pk else None
        for field, value in item.items():
            setattr(child, field, value)
        try:
            child.full_clean(exclude=["workload_class"], validate_unique=False)
        except ValidationError as exc:
            errors.update(_prefixed(exc, f"{relation}.{index}").message_dict)
            continue
        if before is None or snapshot(child) != before:
            to_save.append(child)
    if errors:
        raise ValidationError(errors)
    for natural_key, child in existing.items():
        if natural_key not in seen:
            child.delete()
    for child in to_save:
        child.save()


def _clean_class(workload_class: WorkloadClass) -> None:
    workload_class.full_clean()


@transaction.atomic
def workload_class_create(
    *,
    actor,
    fields: dict,
    slos: list[dict] | None = None,
    schedules: list[dict] | None = None,
    provision: bool = True,
) -> WorkloadClass:
    """`provision=False` for bulk callers that provision every class themselves afterwards."""
    workload_class = WorkloadClass(**fields)
    _clean_class(workload_class)
    workload_class.save()
    _sync_children(workload_class, "slos", slos or [])
    _sync_children(workload_class, "schedules", schedules or [])
    audit_event_record(
        actor=actor,
        action="workload_class.create",
        target=workload_class,
        changes=diff({}, workload_class_snapshot(workload_class)),
        workload_class_slug=workload_class.slug,
    )
    # Its topics, subscriptions and pool are made by an action, so ingestion works without a
    # separate `manage.py provision` (which stays for bulk use and drift repair).
    workload_class.provisioning_action = (
        workload_class_provision_if_changed(actor=actor, workload_class=workload_class, before=None)
        if provision
        else None
    )
    # An observed runtime's past is in Cloud Monitoring: read it now, so the class's evidence
    # does not wait for new history (workloads/services/backfill.py).
    workload_class.backfill_action = backfill_on_register(workload_class=workload_class, actor=actor)
    return workload_class


@transaction.atomic
def workload_class_update(
    *,
    actor,
    workload_class: WorkloadClass,
    fields: dict,
    slos: list[dict] | None = None,
    schedules: list[dict] | None = None,
    provision: bool = True,
) -> WorkloadClass:
    """Change some fields (and, when given, replace the SLOs or schedules). The slug is stable."""
    workload_class = WorkloadClass.objects.select_for_update().get(pk=workload_class.pk)
    if "slug" in fields and fields["slug"] != workload_class.slug:
        raise ValidationError(
            {"slug": "The slug is a stable identifier and cannot change; create a new class instead."}
        )
    before = workload_class_snapshot(workload_class)
    cloud_before = cloud_specs(workload_class)
    for field, value in fields.items():
        setattr(workload_class, field, value)
    _clean_class(workload_class)
    if diff({k: v for k, v in before.items() if k not in _CHILDREN}, snapshot(workload_class)):
        workload_class.save()  # untouched rows keep their updated_at
    if slos is not None:
        _sync_children(workload_class, "slos", slos)
    if schedules is not None:
        _sync_children(workload_class, "schedules", schedules)
    changes = diff(before, workload_class_snapshot(workload_class))
    if changes:
        audit_event_record(
            actor=actor,
            action="workload_class.update",
            target=workload_class,
            changes=changes,
            workload_class_slug=workload_class.slug,
        )
    workload_class.provisioning_action = (
        workload_class_provision_if_changed(actor=actor, workload_class=workload_class, before=cloud_before)
        if provision
        else None
    )
    # An observed runtime's past is in Cloud Monitoring: read it now, so the class's evidence
    # does not wait for new history (workloads/services/backfill.py).
    workload_class.backfill_action = backfill_on_register(workload_class=workload_class, actor=actor)
    return workload_class


# Deleting a class (with or without its cloud resources): workloads/services/class_deletion.py.


# --- Cost rates ------------------------------------------------------------------------------------
@transaction.atomic
def cost_rates_create(*, actor, fields: dict) -> CostRates:
    rates = CostRates(**fields)
    rates.full_clean()
    rates.save()
    audit_event_record(actor=actor, action="cost_rates.create", target=rates, changes=diff({}, snapshot(rates)))
    return rates


@transaction.atomic
def cost_rates_update(*, actor, cost_rates: CostRates, fields: dict) -> CostRates:
    rates = CostRates.objects.select_for_update().get(pk=cost_rates.pk)
    before = snapshot(rates)
    for field, value in fields.items():
        setattr(rates, field, value)
    rates.full_clean()
    changes = diff(before, snapshot(rates))
    if changes:
        rates.save()
        audit_event_record(actor=actor, action="cost_rates.update", target=rates, changes=changes)
    return rates


@transaction.atomic
def cost_rates_delete(*, actor, cost_rates: CostRates) -> None:
    users = list(cost_rates.workload_classes.values_list("slug", flat=True)[:5])
    if users:
        raise ApplicationError(
            f"These rates are used by {', '.join(users)}; point those classes elsewhere first.",
            code="in_use",
        )
    audit_event_record(
        actor=actor, action="cost_rates.delete", target=cost_rates, changes=diff(snapshot(cost_rates), {})
    )
    cost_rates.delete()
