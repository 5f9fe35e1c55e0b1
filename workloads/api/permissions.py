from rest_framework.permissions import SAFE_METHODS, BasePermission

from controlplane.roles import Role, user_role
from workloads.models import ApiToken
from workloads.services.tokens import token_allows


class RolePermission(BasePermission):
    """Role checks for every endpoint. Views say what they need:

    - `read_role` for GET/HEAD/OPTIONS (default viewer), `write_role` for the rest (default admin),
      or a `required_role(request)` method for anything finer;
    - `token_scope_kind`: "api" (default), "ingest" or "deploy"; tokens must carry a matching scope.
    """

    message = "You do not have permission to perform this action."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if isinstance(request.auth, ApiToken):
            scope_kind = getattr(view, "token_scope_kind", "api")
            slug = view.kwargs.get("slug") if scope_kind in ("ingest", "deploy") else None
            if not token_allows(request.auth, method=request.method, scope_kind=scope_kind, workload_class_slug=slug):
                self.message = f"This token's scopes ({', '.join(request.auth.scopes)}) do not allow this request."
                return False
        if hasattr(view, "required_role"):
            needed = view.required_role(request)
        elif request.method in SAFE_METHODS:
            needed = getattr(view, "read_role", Role.VIEWER)
        else:
            needed = getattr(view, "write_role", Role.ADMIN)
        role = user_role(user)
        if role < needed:
            self.message = f"This needs the {needed.name.lower()} role; you have {role.name.lower()}."
            return False
        return True
