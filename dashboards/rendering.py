"""What every dashboard view module shares: the role each view declares (with the login check that
understands htmx), rendering a whole page or only its fragment, and putting a service's errors on
a form and the toasts beside a fragment. The view modules import these and never each
other's helpers (an import-linter contract in .importlinter keeps it so)."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect

from controlplane.roles import Role, class_role, environment_role, readable_environment_ids
from workloads.models import Environment
from workloads.selectors.environments import environment_by_slug


def login_required_htmx(view):
    """Django's login_required, except that an htmx request (a 15 s refresh after the session
    expired) sends the whole tab to the login page instead of swapping it into the table."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            back_to = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(redirect_to_login(back_to)["Location"])
        return redirect_to_login(request.get_full_path())

    return wrapper


def require_role(request, role: Role, *, environment: Environment | None = None) -> None:
    """The user's role for the page: on a class's pages (every `slug` in the dashboards' paths is a
    class) the role in that class's environment, which may differ from their own (controlplane/roles.py);
    with `environment` (incident mode in one environment), the role there."""
    if environment is not None:
        if environment_role(request.user, environment.pk) < role:
            raise PermissionDenied(f"This needs the {role.name.lower()} role in {environment.slug}.")
        return
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("slug") if match is not None else None
    if class_role(request.user, slug) < role:
        where = " in this class's environment" if slug else ""
        raise PermissionDenied(f"This page needs the {role.name.lower()} role{where}.")


def role_required(role: Role, *, post: Role | None = None, environment=None, narrowed: bool = False):
    """The view's role, declared on it as the API's views declare `read_role` / `write_role`
    (workloads/api/permissions.py): a person must be signed in (login_required_htmx) and hold `role`,
    and for a POST `post` when a page that anyone may read takes changes only from a higher role.
    On a class's pages it is the role in the class's environment (require_role); `environment`
    (a function of the request, e.g. selected_environment) names the environment whose role counts,
    or a list of them when the page changes classes in each (a migration plan's two sides).
    `narrowed`: a screen that someone whose only roles are environment overrides may read too: the
    role checked is theirs in the selected environment, always one of theirs (selected_environment);
    the screens that follow the switcher show that one, the others (schedules, compare, migrations,
    audit) filter their rows to every environment where they have a role (readable_environment_ids).
    The roles are kept on the view (`required_role`, `required_post_role`) so a test can read them
    from the URLconf (tests/dashboards/test_view_roles.py)."""
    post_role = post if post is not None else role

    def decorate(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            found = environment(request) if environment is not None else None
            if narrowed and found is None and readable_environment_ids(request.user) is not None:
                found = selected_environment(request)  # one where they have a role, or none: refused
            for where in found if isinstance(found, (list, tuple)) else [found]:
                require_role(request, role, environment=where)
                if post is not None and request.method == "POST":
                    require_role(request, post, environment=where)
            return view(request, *args, **kwargs)

        checked = login_required_htmx(checked)
        checked.required_role = role
        checked.required_post_role = post_role
        return checked

    return decorate


SELECTED_ENVIRONMENT_KEY = "environment"


def selected_environment(request) -> Environment | None:
    """The environment the screens are narrowed to: `?environment=<slug>` chooses it (empty: all) and
    the session remembers it for the other screens. None: every environment."""
    if hasattr(request, "_selected_environment"):
        return request._selected_environment
    session = getattr(request, "session", None)
    if "environment" in request.GET:
        environment = environment_by_slug(request.GET["environment"])
        if session is not None:
            session[SELECTED_ENVIRONMENT_KEY] = environment.slug if environment else ""
    else:
        environment = environment_by_slug(session.get(SELECTED_ENVIRONMENT_KEY, "") if session is not None else "")
    readable = readable_environment_ids(getattr(request, "user", None))
    if readable is not None and (environment is None or environment.pk not in readable):
        # Only overrides: never every environment, always one where they have a role.
        environment = Environment.objects.filter(pk__in=readable).order_by("slug").first()
    request._selected_environment = environment
    return environment


def wants_fragment(request) -> bool:
    # A history restore (back button after the cache was evicted) needs the whole page.
    return bool(request.htmx) and not request.htmx.history_restore_request


def render_page(request, template: str, fragment: str, context: dict) -> HttpResponse:
    """The full page, or only `fragment` for htmx; the same URL serves both, so caches must
    keep them apart."""
    name = f"{template}#{fragment}" if wants_fragment(request) else template
    response = render(request, name, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


def add_service_errors(form, error: ValidationError) -> None:
    """A service's ValidationError on the form that was posted: each message beside the field it
    names, or at the top when the form has no such field."""
    for field, problems in error.message_dict.items():
        form.add_error(field if field in form.fields else None, problems)


def with_toasts(request, response: HttpResponse) -> HttpResponse:
    """The messages come along with an htmx fragment, swapped out of band into the toasts, so the
    person sees what their button did."""
    response.content += render_to_string("dashboards/partials/toasts.html", {"oob": True}, request=request).encode()
    return response
