"""The three roles and how a user's role is found.

Roles are Django groups (created by a data migration) ordered viewer < operator < admin; each
role can do everything the lower ones can. A superuser is an admin.

A user's role may be overridden in one environment (workloads.models.EnvironmentRole): operator
in staging and viewer in prod. Everything scoped to one class, or to incident mode in one
environment, asks `environment_role`; everything else uses the user's own role.
"""

from enum import IntEnum

from django.apps import apps


class Role(IntEnum):
    NONE = 0
    VIEWER = 10  # read everything
    OPERATOR = 20  # + triage, replay, pause, incident mode
    ADMIN = 30  # + edit classes, users, tokens

    @property
    def group_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str) -> "Role":
        try:
            role = cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"Unknown role {name!r}; choose viewer, operator or admin.") from None
        if role is cls.NONE:
            raise ValueError("Unknown role 'none'; choose viewer, operator or admin.")
        return role


ASSIGNABLE_ROLES = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
ROLE_GROUP_NAMES = tuple(role.group_name for role in ASSIGNABLE_ROLES)


def user_role(user) -> Role:
    """The highest role the user holds; cached on the user object for the request."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Role.NONE
    cached = getattr(user, "_controlplane_role", None)
    if cached is not None:
        return cached
    if user.is_superuser:
        role = Role.ADMIN
    else:
        names = set(user.groups.values_list("name", flat=True))
        role = max((r for r in ASSIGNABLE_ROLES if r.group_name in names), default=Role.NONE)
    cache_role(user, role)
    return role


def cache_role(user, role: Role) -> None:
    """Keep the role on the user object for the rest of the request (token authentication looks it
    up with the token, in the same query)."""
    user._controlplane_role = role


def cache_environment_roles(user, overrides: dict[int, Role]) -> None:
    """Keep the user's roles by environment on the user object for the rest of the request (token
    authentication reads them with the token, in the same query)."""
    user._controlplane_environment_roles = overrides


def has_role(user, role: Role) -> bool:
    return user_role(user) >= role


def environment_overrides(user) -> dict[int, Role]:
    """The user's roles by environment id (overrides only), read once per request (cached on the user)."""
    overrides = getattr(user, "_controlplane_environment_roles", None)
    if overrides is None:
        # By name: controlplane sits beside the apps and never imports their models at import time.
        EnvironmentRole = apps.get_model("workloads", "EnvironmentRole")
        overrides = {
            environment: Role.from_name(name)
            for environment, name in EnvironmentRole.objects.filter(user=user).values_list("environment_id", "role")
        }
        cache_environment_roles(user, overrides)
    return overrides


def environment_role(user, environment_id: int | None) -> Role:
    """The user's role in one environment: its override when there is one, else their own role. A
    superuser is an admin everywhere."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Role.NONE
    own = user_role(user)
    if environment_id is None or user.is_superuser:
        return own
    return environment_overrides(user).get(environment_id, own)


def readable_environment_ids(user) -> set[int] | None:
    """Where the user may read: None for everywhere (a role of their own, or a superuser), else the
    environments where an override gives them one (someone whose only roles are overrides)."""
    if user_role(user) >= Role.VIEWER:
        return None
    return set(environment_overrides(user)) if user is not None and user.is_authenticated else set()


def class_role(user, slug: str | None) -> Role:
    """The user's role for the class with this slug (its environment's). Without overrides it is
    their own role, and the class is not looked up; an unknown slug gets their own role (the view
    then answers 404)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Role.NONE
    own = user_role(user)
    if not slug or user.is_superuser:
        return own
    overrides = environment_overrides(user)
    if not overrides:
        return own
    return overrides.get(class_environment_id(slug), own)


def class_environment_id(slug: str | None) -> int | None:
    """The environment of the class with this slug; None when there is no such class."""
    if not slug:
        return None
    WorkloadClass = apps.get_model("workloads", "WorkloadClass")
    return WorkloadClass.objects.filter(slug=slug).values_list("environment_id", flat=True).first()
