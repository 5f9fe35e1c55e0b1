from django.conf import settings
from django.utils.functional import SimpleLazyObject

from controlplane.processes import recent_exits
from controlplane.roles import Role, class_role, user_role


def roles(request):
    """Expose the user's role to templates so buttons appear only for roles that may use them. On a
    class's pages the buttons follow the role in the class's environment (controlplane/roles.py);
    the badge shows the user's own role."""
    user = getattr(request, "user", None)
    own = user_role(user)
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("slug") if match is not None and match.namespace == "dashboards" else None
    role = class_role(user, slug) if slug else own
    return {
        "user_role": own,
        "class_role": role,
        "can_view": role >= Role.VIEWER,
        "can_operate": role >= Role.OPERATOR,
        "can_admin": role >= Role.ADMIN,
    }


def process_exits(request):
    """Unexpected exits of `make run`'s processes (empty elsewhere), for the banner on every page.
    Lazy: htmx partials never read the file."""
    return {"process_exits": SimpleLazyObject(lambda: recent_exits(settings.SUPERVISOR_STATE_FILE))}
