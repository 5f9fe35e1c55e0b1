from django.conf import settings
from django.utils.functional import SimpleLazyObject

from controlplane.processes import recent_exits
from controlplane.roles import Role, user_role


def roles(request):
    """Expose the user's role to templates so buttons appear only for roles that may use them."""
    role = user_role(getattr(request, "user", None))
    return {
        "user_role": role,
        "can_view": role >= Role.VIEWER,
        "can_operate": role >= Role.OPERATOR,
        "can_admin": role >= Role.ADMIN,
    }


def process_exits(request):
    """Unexpected exits of `make run`'s processes (empty elsewhere), for the banner on every page.
    Lazy: htmx partials never read the file."""
    return {"process_exits": SimpleLazyObject(lambda: recent_exits(settings.SUPERVISOR_STATE_FILE))}
