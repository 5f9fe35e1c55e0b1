from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from controlplane.roles import ASSIGNABLE_ROLES, Role
from workloads.services.audit import audit_event_record


@transaction.atomic
def user_set_role(*, actor, user, role: Role) -> None:
    """Give `user` exactly one role group. Admins may use the Django admin (is_staff)."""
    before = sorted(
        user.groups.filter(name__in=[r.group_name for r in ASSIGNABLE_ROLES]).values_list("name", flat=True)
    )
    user.groups.remove(*Group.objects.filter(name__in=[r.group_name for r in ASSIGNABLE_ROLES]))
    # get_or_create: the data migration makes the groups, but a flushed test database has none.
    user.groups.add(Group.objects.get_or_create(name=role.group_name)[0])
    if user.is_staff != (role is Role.ADMIN):
        user.is_staff = role is Role.ADMIN
        user.save(update_fields=["is_staff"])
    if before != [role.group_name]:
        audit_event_record(
            actor=actor, action="user.set_role", target=user, changes={"role": [before, [role.group_name]]}
        )


@transaction.atomic
def user_create(*, actor, username: str, role: Role, password: str | None = None, email: str = ""):
    """Create a user with one role. Without a password the account can only use API tokens."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise ValidationError({"username": f"A user named {username!r} already exists."})
    user = User(username=username, email=email)
    user.full_clean(exclude=["password"])
    if password:
        validate_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    audit_event_record(
        actor=actor,
        action="user.create",
        target=user,
        changes={"username": [None, username], "role": [None, role.group_name]},
    )
    user_set_role(actor=actor, user=user, role=role)
    return user
