"""People for the users screen and `/api/v1/users/`: one query for the users, one for their groups;
and what a user chose for themselves (the clock the screens show times in)."""

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet

from controlplane.roles import ASSIGNABLE_ROLES, Role
from workloads.models import EnvironmentRole, TimeDisplay, UserPreference

_ROLE_BY_GROUP = {role.group_name: role for role in ASSIGNABLE_ROLES}


def user_list_queryset() -> QuerySet:
    from django.contrib.auth.models import Group

    return (
        get_user_model()
        .objects.select_related("identity")
        .prefetch_related(
            Prefetch("groups", queryset=Group.objects.only("name"), to_attr="role_groups"),
            Prefetch(
                "environment_roles",
                queryset=EnvironmentRole.objects.select_related("environment"),
                to_attr="environment_role_rows",
            ),
        )
    )


def user_environment_roles(user) -> list[EnvironmentRole]:
    """The user's roles by environment (overrides of their own role), from the prefetch when there."""
    rows = getattr(user, "environment_role_rows", None)
    if rows is None:
        rows = list(user.environment_roles.select_related("environment"))
    return rows


def user_role_name(user) -> str:
    """The role from the prefetched groups (controlplane.roles.user_role asks the database per user)."""
    if user.is_superuser:
        return Role.ADMIN.group_name
    groups = getattr(user, "role_groups", None)
    names = [group.name for group in groups] if groups is not None else user.groups.values_list("name", flat=True)
    role = max((_ROLE_BY_GROUP[name] for name in names if name in _ROLE_BY_GROUP), default=Role.NONE)
    return role.name.lower()


def user_time_display(user) -> str:
    """The clock the screens show `user` times in: "utc" (the default) or "local"."""
    if user is None or not user.is_authenticated:
        return TimeDisplay.UTC
    chosen = UserPreference.objects.filter(user=user).values_list("time_display", flat=True).first()
    return chosen or TimeDisplay.UTC
