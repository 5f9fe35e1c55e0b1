"""People: create, change roles, deactivate. Every change is audited; the last active admin can
never be demoted or deactivated (nobody could manage users any more)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.roles import ASSIGNABLE_ROLES, Role
from workloads.errors import ApplicationError
from workloads.models import ApiToken, Environment, TimeDisplay, UserIdentity, UserPreference
from workloads.services.audit import audit_event_record
from workloads.services.environments import environment_role_set
from workloads.services.tokens import api_token_revoke

_ROLE_GROUPS = [r.group_name for r in ASSIGNABLE_ROLES]


def _default_source(actor) -> str:
    return f"set by {actor.get_username()}" if actor is not None and actor.pk else "set by the system"


def _active_admins():
    User = get_user_model()
    return User.objects.filter(is_active=True).filter(Q(is_superuser=True) | Q(groups__name=Role.ADMIN.group_name))


def _other_active_admins(user) -> set[int]:
    """Active admins other than `user`. The admins' rows (and the user's) are locked first, so two
    admins demoting each other at once are serialised and the second sees the first's change."""
    User = get_user_model()
    ids = set(_active_admins().values_list("pk", flat=True)) | {user.pk}
    list(User.objects.filter(pk__in=ids).order_by("pk").select_for_update().values_list("pk", flat=True))
    return set(_active_admins().exclude(pk=user.pk).values_list("pk", flat=True))


def _refuse_if_last_admin(user, *, field: str, what: str) -> None:
    if user.is_superuser or user.groups.filter(name=Role.ADMIN.group_name).exists():
        if user.is_active and not _other_active_admins(user):
            message = f"{user.get_username()} is the last active admin: {what} would leave nobody to manage users."
            raise ValidationError({field: message})


@transaction.atomic
def user_set_role(*, actor, user, role: Role, source: str | None = None) -> None:
    """Give `user` exactly one role group. Admins may use the Django admin (is_staff). `source`
    says where the role came from (shown with the role); by default who set it."""
    if not isinstance(role, Role) or role not in ASSIGNABLE_ROLES:
        raise ValidationError({"role": "Choose viewer, operator or admin."})
    before = sorted(user.groups.filter(name__in=_ROLE_GROUPS).values_list("name", flat=True))
    if role is not Role.ADMIN:
        _refuse_if_last_admin(user, field="role", what="taking away the admin role")
    user.groups.remove(*Group.objects.filter(name__in=_ROLE_GROUPS))
    # get_or_create: the data migration makes the groups, but a flushed test database has none.
    user.groups.add(Group.objects.get_or_create(name=role.group_name)[0])
    if user.is_staff != (role is Role.ADMIN):
        user.is_staff = role is Role.ADMIN
        user.save(update_fields=["is_staff"])
    source = (source or _default_source(actor))[:255]
    identity, _ = UserIdentity.objects.get_or_create(user=user)
    source_before = identity.role_source
    if source_before != source:
        identity.role_source = source
        identity.save(update_fields=["role_source"])
    if before != [role.group_name]:
        audit_event_record(
            actor=actor,
            action="user.set_role",
            target=user,
            changes={"role": [before, [role.group_name]], "role_source": [source_before, source]},
        )
    user._controlplane_role = None  # drop a role cached for this request


@transaction.atomic
def user_create(
    *, actor, username: str, role: Role, password: str | None = None, email: str = "", source: str | None = None
):
    """Create a user with one role. Without a password the account can only use API tokens or
    single sign-on."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise ValidationError({"username": f"A user named {username!r} already exists."})
    if email and User.objects.filter(email__iexact=email).exists():
        # Single sign-on finds people by e-mail: two accounts with one address could not sign in.
        raise ValidationError({"email": f"Another user already has the e-mail address {email!r}."})
    user = User(username=username, email=email)
    user.full_clean(exclude=["password"])
    if password:
        validate_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    audit_event_record(
        actor=actor,
        action="user.create",
        target=user,
        changes={"username": [None, username], "email": [None, email], "role": [None, role.group_name]},
    )
    user_set_role(actor=actor, user=user, role=role, source=source)
    return user


@transaction.atomic
def user_set_active(*, actor, user, active: bool) -> None:
    """Deactivate (signs the person out everywhere: sessions stop resolving, tokens stop
    authenticating) or reactivate a user."""
    user = get_user_model().objects.select_for_update().get(pk=user.pk)
    if user.is_active == active:
        return
    if not active:
        if actor is not None and actor.pk == user.pk:
            raise ValidationError({"is_active": "You cannot deactivate yourself."})
        _refuse_if_last_admin(user, field="is_active", what="deactivating them")
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit_event_record(
        actor=actor,
        action="user.activate" if active else "user.deactivate",
        target=user,
        changes={"is_active": [not active, active]},
    )


@transaction.atomic
def user_tokens_revoke(*, actor, user) -> int:
    """Revoke every active token of `user`; returns how many."""
    tokens = list(ApiToken.objects.active().filter(user=user))
    for token in tokens:
        api_token_revoke(actor=actor, token=token)
    return len(tokens)


def user_sso_sign_in_recorded(*, user, provider: str, subject: str) -> None:
    UserIdentity.objects.update_or_create(
        user=user,
        defaults={"sso_provider": provider, "sso_subject": subject[:255], "last_sso_sign_in_at": timezone.now()},
    )


@transaction.atomic
@transaction.atomic
def user_update(
    *,
    actor,
    user,
    role: Role | None = None,
    is_active: bool | None = None,
    environment_roles: dict[str, Role | None] | None = None,
) -> None:
    """What an admin changes on the users screen or with PATCH /api/v1/users/<username>/.
    `environment_roles`: by environment slug, the role there (None: their own role there again)."""
    if role is not None:
        user_set_role(actor=actor, user=user, role=role)
    if is_active is not None:
        user_set_active(actor=actor, user=user, active=is_active)
    for slug, environment_role in (environment_roles or {}).items():
        environment = Environment.objects.get(slug=slug)
        environment_role_set(actor=actor, user=user, environment=environment, role=environment_role)


@transaction.atomic
def user_time_display_set(*, actor, user, time_display: str) -> UserPreference:
    """Choose the clock the screens show `user` times in ("utc" or "local"), kept with the user so
    every browser they sign in from shows the same. Audited like any other change."""
    if time_display not in TimeDisplay.values:
        raise ApplicationError(
            f"time_display must be one of {', '.join(TimeDisplay.values)}, not {time_display!r}.",
            code="invalid_time_display",
            status=400,
        )
    preference, _ = UserPreference.objects.select_for_update().get_or_create(user=user)
    before = preference.time_display
    if before != time_display:
        preference.time_display = time_display
        preference.save(update_fields=["time_display", "updated_at"])
        audit_event_record(
            actor=actor,
            action="user.time_display",
            target=user,
            changes={"time_display": [before, time_display]},
        )
    return preference
