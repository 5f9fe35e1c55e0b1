"""The three roles and how a user's role is found.

Roles are Django groups (created by a data migration) ordered viewer < operator < admin; each
role can do everything the lower ones can. A superuser is an admin.
"""

from enum import IntEnum


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


def has_role(user, role: Role) -> bool:
    return user_role(user) >= role
