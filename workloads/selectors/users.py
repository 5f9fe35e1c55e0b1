"""People for the users screen and `/api/v1/users/`: one query for the users, one for their groups."""

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet

from controlplane.roles import ASSIGNABLE_ROLES, Role

_ROLE_BY_GROUP = {role.group_name: role for role in ASSIGNABLE_ROLES}


def user_list_queryset() -> QuerySet:
    from django.contrib.auth.models import Group

    return (
        get_user_model()
        .objects.select_related("identity")
        .prefetch_related(Prefetch("groups", queryset=Group.objects.only("name"), to_attr="role_groups"))
    )


def user_role_name(user) -> str:
    """The role from the prefetched groups (controlplane.roles.user_role asks the database per user)."""
    if user.is_superuser:
        return Role.ADMIN.group_name
    groups = getattr(user, "role_groups", None)
    names = [group.name for group in groups] if groups is not None else user.groups.values_list("name", flat=True)
    role = max((_ROLE_BY_GROUP[name] for name in names if name in _ROLE_BY_GROUP), default=Role.NONE)
    return role.name.lower()
