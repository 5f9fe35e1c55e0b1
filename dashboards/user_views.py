"""The users screen (admins only): people with their role and where it came from, invite or create,
change a role, deactivate or reactivate, see and revoke tokens. The same services as
/api/v1/users/, so every change is audited and the last admin stays an admin."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from controlplane.roles import Role
from dashboards.forms.users import ROLE_CHOICES, UserCreateForm, UserEnvironmentRoleForm, UserRoleForm
from dashboards.rendering import add_service_errors, role_required
from workloads.models import ApiToken, Environment
from workloads.selectors.users import user_environment_roles, user_list_queryset, user_role_name
from workloads.services import environments as environment_services
from workloads.services import tokens as token_services
from workloads.services import users as user_services


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def users(request):
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_services.user_create(
                actor=request.user,
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                role=Role.from_name(form.cleaned_data["role"]),
                password=form.cleaned_data["password"] or None,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{user.username} created as {form.cleaned_data['role']}.")
            return redirect("dashboards:user-detail", username=user.username)
    rows = list(
        user_list_queryset()
        .annotate(active_tokens=Count("api_tokens", filter=Q(api_tokens__revoked_at__isnull=True), distinct=True))
        .order_by("-is_active", "username")
    )
    for row in rows:
        row.role_name = user_role_name(row)
    return render(request, "dashboards/users.html", {"form": form, "rows": rows})


@require_http_methods(["GET"])
@role_required(Role.ADMIN)
def user_detail(request, username: str):
    person = get_object_or_404(user_list_queryset(), username=username)
    person.role_name = user_role_name(person)
    tokens = ApiToken.objects.filter(user=person).select_related("created_by").order_by("revoked_at", "-created_at")
    overrides = {row.environment_id: row for row in user_environment_roles(person)}
    environment_rows = [(environment, overrides.get(environment.pk)) for environment in Environment.objects.all()]
    return render(
        request,
        "dashboards/user_detail.html",
        {
            "person": person,
            "tokens": tokens,
            "role_form": UserRoleForm(initial={"role": person.role_name}),
            "environment_rows": environment_rows,
            "role_choices": ROLE_CHOICES,
        },
    )


def _act(request, username: str, change) -> None:
    person = get_object_or_404(get_user_model(), username=username)
    try:
        message = change(person)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, message)


@require_POST
@role_required(Role.ADMIN)
def user_role(request, username: str):
    form = UserRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose viewer, operator or admin.")
        return redirect("dashboards:user-detail", username=username)
    role = Role.from_name(form.cleaned_data["role"])

    def change(person):
        user_services.user_set_role(actor=request.user, user=person, role=role)
        return f"{person.username} is now {role.group_name}."

    _act(request, username, change)
    return redirect("dashboards:user-detail", username=username)


@require_POST
@role_required(Role.ADMIN)
def user_environment_role(request, username: str):
    """A person's role in one environment, or their own role there again."""
    form = UserEnvironmentRoleForm(request.POST)
    environment = Environment.objects.filter(slug=form.data.get("environment", "")).first()
    if not form.is_valid() or environment is None:
        messages.error(request, "Choose an environment and viewer, operator, admin or their own role.")
        return redirect("dashboards:user-detail", username=username)
    role = Role.from_name(form.cleaned_data["role"]) if form.cleaned_data["role"] else None

    def change(person):
        environment_services.environment_role_set(actor=request.user, user=person, environment=environment, role=role)
        what = role.group_name if role else f"{user_role_name(person)} (their own role)"
        return f"{person.username} is {what} in {environment.slug}."

    _act(request, username, change)
    return redirect("dashboards:user-detail", username=username)


@require_POST
@role_required(Role.ADMIN)
def user_active(request, username: str):
    active = request.POST.get("active") == "1"

    def change(person):
        user_services.user_set_active(actor=request.user, user=person, active=active)
        return (
            f"{person.username} {'reactivated' if active else 'deactivated: their sessions and tokens stop working'}."
        )

    _act(request, username, change)
    return redirect("dashboards:user-detail", username=username)


@require_POST
@role_required(Role.ADMIN)
def user_tokens_revoke(request, username: str):

    def change(person):
        count = user_services.user_tokens_revoke(actor=request.user, user=person)
        return f"Revoked {count} token{'s' if count != 1 else ''} of {person.username}."

    _act(request, username, change)
    return redirect("dashboards:user-detail", username=username)


@require_POST
@role_required(Role.ADMIN)
def user_token_revoke(request, username: str, token_id: int):
    token = get_object_or_404(ApiToken, pk=token_id, user__username=username)
    token_services.api_token_revoke(actor=request.user, token=token)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("dashboards:user-detail", username=username)
