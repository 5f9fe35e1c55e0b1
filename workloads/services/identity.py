"""Single sign-on: turn a verified identity (OIDC claims or an IAP assertion) into a user with the
role the rules give (controlplane/role_rules.py). The caller has verified the signature,
audience, issuer and expiry; this decides who the person is here and what they may do.

People are found by e-mail address (case-insensitive), created on their first sign-in, and their
role is set again from the rules at every sign-in, so a change of groups at the identity provider
takes effect the next time they sign in. A person no rule matches is refused, and so is a
deactivated account: both are audited as denied sign-ins.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from controlplane.role_rules import (
    GOOGLE_GROUP,
    GoogleGroupsUnavailable,
    RoleRule,
    environment_roles_from_rules,
    role_from_rules,
)
from controlplane.roles import Role
from workloads.models import AuditResult, Environment, EnvironmentRole, SsoProvider
from workloads.services.audit import audit_event_record
from workloads.services.environments import environment_role_set
from workloads.services.users import user_create, user_set_role, user_sso_sign_in_recorded

logger = logging.getLogger(__name__)


class SsoSignInRefused(Exception):
    """The identity is genuine but may not sign in here; the message says why, for the person."""


@dataclass(frozen=True)
class VerifiedIdentity:
    provider: SsoProvider
    subject: str
    email: str
    email_verified: bool = True
    groups: tuple[str, ...] = ()


def _username_for(email: str) -> str:
    User = get_user_model()
    base = email[:150]
    candidate, n = base, 1
    while User.objects.filter(username=candidate).exists():
        n += 1
        suffix = f"-{n}"
        candidate = base[: 150 - len(suffix)] + suffix
    return candidate


def _refuse(identity: VerifiedIdentity, user, reason: str) -> SsoSignInRefused:
    audit_event_record(
        actor=user,
        action="user.sso_sign_in",
        target=user,
        target_repr=identity.email or identity.subject,
        result=AuditResult.DENIED,
        extra={"provider": identity.provider.value, "subject": identity.subject, "reason": reason},
    )
    return SsoSignInRefused(reason)


def _google_groups_of(email: str) -> frozenset[str]:
    """The person's Google groups for google-group rules; fails closed (GoogleGroupsUnavailable,
    logged) so a Groups API outage costs those rules, never the sign-in."""
    from workloads.providers.gcp.groups import GroupLookupFailed, google_groups

    client = google_groups(
        api_url=settings.GOOGLE_GROUPS_API_URL,
        cache_seconds=settings.GOOGLE_GROUPS_CACHE_SECONDS,
        timeout_seconds=settings.GOOGLE_GROUPS_TIMEOUT_SECONDS,
    )
    try:
        return client.groups_of(email)
    except GroupLookupFailed as exc:
        logger.warning("Google groups of %s could not be read; google-group rules do not match: %s", email, exc)
        raise GoogleGroupsUnavailable(str(exc)) from None


def sso_sign_in(*, identity: VerifiedIdentity, rules: tuple[RoleRule, ...]):
    """The user for a verified identity, created or updated; SsoSignInRefused (audited) otherwise."""
    email = identity.email.strip()
    if not email:
        raise _refuse(identity, None, "The identity provider sent no e-mail address for this account.")
    if not identity.email_verified:
        raise _refuse(identity, None, f"The identity provider has not verified the e-mail address {email}.")
    users = list(get_user_model().objects.filter(email__iexact=email)[:2])
    if len(users) > 1:
        raise _refuse(
            identity, None, f"Several accounts here have the e-mail address {email}; ask an admin to merge them."
        )
    user = users[0] if users else None
    if user is not None and not user.is_active:
        raise _refuse(identity, user, f"The account for {email} is deactivated; ask an admin.")
    uses_google_groups = any(rule.kind == GOOGLE_GROUP for rule in rules)
    decision = role_from_rules(
        rules, email=email, groups=identity.groups, google_groups=_google_groups_of if uses_google_groups else None
    )
    if decision.role is Role.NONE:
        reason = f"No role rule gives {email} a role here; ask an admin to add one."
        if decision.google_groups_error:
            reason += " (Your Google groups could not be read just now; try again later.)"
        raise _refuse(identity, user, reason)
    source = f"{identity.provider.label} {decision.source}"[:255]
    try:
        with transaction.atomic():
            if user is None:
                user = user_create(
                    actor=None, username=_username_for(email), email=email, role=decision.role, source=source
                )
            else:
                user_set_role(actor=None, user=user, role=decision.role, source=source)
            user_sso_sign_in_recorded(user=user, provider=identity.provider.value, subject=identity.subject)
            _environment_roles_apply(user, identity, rules, email=email)
            audit_event_record(
                actor=user,
                action="user.sso_sign_in",
                target=user,
                extra={
                    "provider": identity.provider.value,
                    "subject": identity.subject,
                    "role": decision.role.group_name,
                    "source": source,
                    **_google_groups_note(decision),
                },
            )
    except ValidationError as exc:  # e.g. the rules would demote the last admin
        raise _refuse(identity, user, " ".join(exc.messages)) from None
    return user


def _environment_roles_apply(user, identity: VerifiedIdentity, rules: tuple[RoleRule, ...], *, email: str) -> None:
    """Roles by environment from `KIND:VALUE=ROLE@ENVIRONMENT` rules, set again at each sign-in. A
    role a rule gave that no rule gives any more is taken back; one an admin set by hand stays
    unless a rule now gives a role in that environment."""
    uses_google_groups = any(rule.kind == GOOGLE_GROUP for rule in rules)
    decisions = environment_roles_from_rules(
        rules, email=email, groups=identity.groups, google_groups=_google_groups_of if uses_google_groups else None
    )
    environments = {e.slug: e for e in Environment.objects.filter(slug__in=list(decisions))}
    for slug, decision in decisions.items():
        environment = environments.get(slug)
        if environment is None:
            logger.warning("SSO_ROLE_RULES name the environment %r, which does not exist", slug)
            continue
        if decision.role is not Role.NONE:
            source = f"{identity.provider.label} {decision.source}"[:255]
            environment_role_set(actor=None, user=user, environment=environment, role=decision.role, source=source)
    rule_given = tuple(f"{provider.label} " for provider in SsoProvider)
    for override in EnvironmentRole.objects.filter(user=user).select_related("environment"):
        matched = decisions.get(override.environment.slug)
        if override.source.startswith(rule_given) and (matched is None or matched.role is Role.NONE):
            environment_role_set(actor=None, user=user, environment=override.environment, role=None, source="no rule")


def _google_groups_note(decision) -> dict:
    return {"google_groups_error": decision.google_groups_error[:500]} if decision.google_groups_error else {}


def sso_sign_in_failed(*, provider: SsoProvider, reason: str) -> None:
    """Audit a sign-in whose proof did not hold (bad signature, audience, expiry, state...)."""
    audit_event_record(
        actor=None,
        action="user.sso_sign_in",
        target_repr=f"{provider.label} sign-in",
        result=AuditResult.FAILURE,
        extra={"provider": provider.value, "reason": reason[:500]},
    )
