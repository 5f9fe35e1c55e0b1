from django.db.models import Q
from rest_framework.exceptions import PermissionDenied
from rest_framework.filters import BaseFilterBackend
from rest_framework.permissions import SAFE_METHODS, BasePermission

from controlplane.roles import (
    Role,
    class_role,
    environment_overrides,
    environment_role,
    readable_environment_ids,
    user_role,
)
from workloads.models import ApiToken
from workloads.services.tokens import token_allows


class RolePermission(BasePermission):
    """Role checks for every endpoint. Views say what they need:

    - `read_role` for GET/HEAD/OPTIONS (default viewer), `write_role` for the rest (default admin),
      or a `required_role(request)` method for anything finer;
    - `token_scope_kind`: "api" (default), "ingest" or "deploy"; tokens must carry a matching scope.

    The role is the user's role in the environment the request is about (an override per
    environment, controlplane/roles.py): the class named by the URL's `slug` (every `slug` in the
    API's paths is a class, except where a view names another kwarg in `class_slug_kwarg` or None),
    or what a view's `permission_environment_id(request)` returns (incident mode in one environment).
    Objects of one class (`workload_class` on the object) are checked again for their class's
    environment when the view looks them up.
    """

    message = "You do not have permission to perform this action."

    def has_permission(self, request, view) -> bool:
        """Views whose class comes with the body or the looked-up object (`class_in_request = True`)
        pass a change here with the user's highest role in any environment; each of their changing
        routes then checks the role in its class's environment (`check_class_role`, or the object
        check below). Their reads keep the user's own role."""
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if isinstance(request.auth, ApiToken):
            scope_kind = getattr(view, "token_scope_kind", "api")
            slug = view.kwargs.get("slug") if scope_kind in ("ingest", "deploy") else None
            if not token_allows(request.auth, method=request.method, scope_kind=scope_kind, workload_class_slug=slug):
                self.message = f"This token's scopes ({', '.join(request.auth.scopes)}) do not allow this request."
                return False
        needed = self._needed(request, view)
        role = self._role(request, view)
        if role < needed:
            self.message = f"This needs the {needed.name.lower()} role; you have {role.name.lower()}."
            return False
        return True

    @staticmethod
    def _needed(request, view) -> Role:
        if hasattr(view, "required_role"):
            return view.required_role(request)
        if request.method in SAFE_METHODS:
            return getattr(view, "read_role", Role.VIEWER)
        return getattr(view, "write_role", Role.ADMIN)

    @staticmethod
    def _role(request, view) -> Role:
        if _reads_by_environment(request, view):
            # Someone whose only roles are overrides reads these lists (and their rows), narrowed to
            # those environments by EnvironmentVisibilityFilterBackend.
            return max(environment_overrides(request.user).values(), default=Role.NONE)
        if getattr(view, "class_in_request", False) and request.method not in SAFE_METHODS:
            own = user_role(request.user)
            if request.user.is_superuser:
                return own
            return max([own, *environment_overrides(request.user).values()])
        if hasattr(view, "permission_environment_id"):
            return environment_role(request.user, view.permission_environment_id(request))
        kwarg = getattr(view, "class_slug_kwarg", "slug")
        if kwarg and view.kwargs.get(kwarg):
            return class_role(request.user, view.kwargs[kwarg])
        return user_role(request.user)

    def has_object_permission(self, request, view, obj) -> bool:
        user = request.user
        if user.is_superuser or not environment_overrides(user):
            return True  # the role checked above is the role everywhere
        environment_id = self._object_environment_id(obj)
        if environment_id is None:
            return True
        needed = self._needed(request, view)
        role = environment_role(user, environment_id)
        if role < needed:
            self.message = (
                f"This needs the {needed.name.lower()} role in this environment; you have {role.name.lower()}."
            )
            return False
        return True

    @staticmethod
    def _object_environment_id(obj) -> int | None:
        if hasattr(obj, "environment_id") and obj._meta.model_name == "workloadclass":
            return obj.environment_id
        workload_class = getattr(obj, "workload_class", None) if hasattr(obj, "workload_class_id") else None
        if getattr(obj, "slo_id", None):  # an SLO's incident: the SLO's class
            workload_class = obj.slo.workload_class
        return workload_class.environment_id if workload_class is not None else None


def check_class_role(request, workload_class, needed: Role) -> None:
    """For a class named in the request's body: the user's role in its environment must reach `needed`."""
    role = environment_role(request.user, workload_class.environment_id)
    if role < needed:
        raise PermissionDenied(
            f"This needs the {needed.name.lower()} role in {workload_class.slug}'s environment; you have "
            f"{role.name.lower()}."
        )


def check_classes_role(request, classes, needed: Role) -> None:
    """Each class the change touches (a migration plan's source and target): the role in every one's
    environment must reach `needed`."""
    for workload_class in classes:
        check_class_role(request, workload_class, needed)


# The list and detail routes of views that declare `environment_lookup` (how a row reaches its
# environment) are narrowed for someone whose only roles are overrides.
READ_ACTIONS = {"list", "retrieve", None}


def _reads_by_environment(request, view) -> bool:
    if request.method not in SAFE_METHODS or not getattr(view, "environment_lookup", None):
        return False
    if getattr(view, "action", None) not in READ_ACTIONS:
        return False  # a custom read route (a class's deletion preview...) keeps its own check
    return readable_environment_ids(request.user) is not None


def environment_condition(lookup, environment_ids) -> Q:
    """The rows of these environments. `lookup` is the ORM path from a row to its environment, a
    tuple of paths (any of them), or a function of the ids returning the condition, for rows that
    reach their environment another way (an audit event names its class by slug; a migration plan
    needs both of its classes)."""
    if callable(lookup):
        return lookup(environment_ids)
    where = Q()
    for path in (lookup,) if isinstance(lookup, str) else lookup:
        where |= Q(**{f"{path}__in": environment_ids})
    return where


def readable_rows(request, queryset, lookup):
    """`queryset` as the user may read it: every row for a role of their own, else the rows of the
    environments where an override gives them one. For views that build their querysets themselves
    (APIView); the generic views get it from EnvironmentVisibilityFilterBackend."""
    readable = readable_environment_ids(request.user)
    return queryset if readable is None else queryset.filter(environment_condition(lookup, readable))


class EnvironmentVisibilityFilterBackend(BaseFilterBackend):
    """Rows of the environments where an override-only user has a role (a user with a role of their
    own sees every row). Views say how a row reaches its environment in `environment_lookup`
    (environment_condition)."""

    def filter_queryset(self, request, queryset, view):
        lookup = getattr(view, "environment_lookup", None)
        return readable_rows(request, queryset, lookup) if lookup else queryset
