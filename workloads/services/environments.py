"""Create, change and delete environments, and set a person's role in one. Each change is audited.

An environment's projects and regions bound its classes' resource names, so a change that would
leave a class naming a project or region the environment no longer has is refused, naming the
classes; so is deleting an environment that still has classes.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from controlplane.roles import Role
from workloads.errors import ApplicationError
from workloads.models import Environment, EnvironmentRole
from workloads.models.classes import environment_name_problems
from workloads.services.audit import audit_event_record, diff, snapshot


def _check_classes_fit(environment: Environment) -> None:
    outside = []
    for workload_class in environment.workload_classes.all() if environment.pk else []:
        for field, _problem in environment_name_problems(workload_class, environment):
            outside.append(f"{workload_class.slug}.{field}")
    if outside:
        shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
        raise ValidationError(
            {"projects": f"These classes' resources would fall outside the environment: {shown}. Move them first."}
        )


@transaction.atomic
def environment_create(*, actor, fields: dict) -> Environment:
    environment = Environment(**fields)
    environment.full_clean()
    environment.save()
    audit_event_record(
        actor=actor, action="environment.create", target=environment, changes=diff({}, snapshot(environment))
    )
    return environment


@transaction.atomic
def environment_update(*, actor, environment: Environment, fields: dict) -> Environment:
    environment = Environment.objects.select_for_update().get(pk=environment.pk)
    if "slug" in fields and fields["slug"] != environment.slug:
        raise ValidationError({"slug": "The slug is a stable identifier and cannot change."})
    before = snapshot(environment)
    for field, value in fields.items():
        setattr(environment, field, value)
    environment.full_clean()
    _check_classes_fit(environment)
    changes = diff(before, snapshot(environment))
    if changes:
        environment.save()
        audit_event_record(actor=actor, action="environment.update", target=environment, changes=changes)
    return environment


@transaction.atomic
def environment_delete(*, actor, environment: Environment) -> None:
    classes = list(environment.workload_classes.values_list("slug", flat=True)[:5])
    if classes:
        raise ApplicationError(
            f"Environment {environment.slug} still has classes ({', '.join(classes)}); move or delete them first.",
            code="in_use",
        )
    audit_event_record(
        actor=actor, action="environment.delete", target=environment, changes=diff(snapshot(environment), {})
    )
    environment.delete()


@transaction.atomic
def environment_role_set(*, actor, user, environment: Environment, role: Role | None, source: str = "") -> bool:
    """Give `user` `role` in `environment` (None: back to their own role there). True when it changed."""
    current = EnvironmentRole.objects.select_for_update().filter(user=user, environment=environment).first()
    before = current.role if current else None
    after = role.group_name if role is not None else None
    source = source or f"set by {getattr(actor, 'username', None) or 'the system'}"
    if before == after and (current is None or current.source == source):
        return False
    if after is None:
        current.delete()
    elif current is None:
        EnvironmentRole.objects.create(user=user, environment=environment, role=after, source=source[:255])
    else:
        current.role, current.source = after, source[:255]
        current.save(update_fields=["role", "source"])
    audit_event_record(
        actor=actor,
        action="user.environment_role",
        target=user,
        changes={f"role@{environment.slug}": [before, after]},
        extra={"environment": environment.slug, "source": source},
    )
    return True
