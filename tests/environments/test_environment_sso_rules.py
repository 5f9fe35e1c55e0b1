"""SSO_ROLE_RULES that name an environment (`KIND:VALUE=ROLE@ENVIRONMENT`): they set the person's
role there at each sign-in and take it back when no rule gives it any more; they never let anyone
sign in on their own."""

import pytest

from controlplane.role_rules import environment_roles_from_rules, parse_role_rules, role_from_rules
from controlplane.roles import Role
from workloads.models import Environment, EnvironmentRole, SsoProvider
from workloads.services.environments import environment_role_set
from workloads.services.identity import SsoSignInRefused, VerifiedIdentity, sso_sign_in

RULES = "domain:example.com=viewer, group:staging-oncall=operator@staging, email:ada@example.com=admin@prod"


def test_rules_naming_an_environment_are_read_and_kept_apart():
    rules = parse_role_rules(RULES)
    assert [str(rule) for rule in rules] == [r.strip() for r in RULES.split(",")]
    everywhere = role_from_rules(rules, email="bob@example.com", groups=["staging-oncall"])
    assert everywhere.role is Role.VIEWER  # the staging rule does not raise the role everywhere
    by_environment = environment_roles_from_rules(rules, email="bob@example.com", groups=["staging-oncall"])
    assert {slug: d.role for slug, d in by_environment.items()} == {"staging": Role.OPERATOR, "prod": Role.NONE}
    assert by_environment["staging"].source == "rule group:staging-oncall=operator@staging"
    with pytest.raises(ValueError, match="ROLE@ENVIRONMENT"):
        parse_role_rules("group:x=operator@Not An Env")
    with pytest.raises(ValueError, match="Unknown role"):
        parse_role_rules("group:x=root@staging")


@pytest.mark.django_db
def test_sign_in_sets_and_takes_back_roles_by_environment():
    staging = Environment.objects.create(
        slug="staging",
        name="Staging",
        projects=["acme-staging"],
        regions=["us-central1"],
        monitoring_project="acme-staging",
    )
    prod = Environment.objects.create(
        slug="prod", name="Prod", projects=["acme-prod"], regions=["us-central1"], monitoring_project="acme-prod"
    )
    rules = parse_role_rules(RULES)
    identity = VerifiedIdentity(
        provider=SsoProvider.OIDC, subject="s-1", email="bob@example.com", groups=("staging-oncall",)
    )
    bob = sso_sign_in(identity=identity, rules=rules)
    override = EnvironmentRole.objects.get(user=bob)
    assert (override.environment, override.role) == (staging, "operator")
    assert "group:staging-oncall=operator@staging" in override.source
    # An admin's own choice in another environment is not the rules' to take back.
    environment_role_set(actor=None, user=bob, environment=prod, role=Role.VIEWER)

    left_the_group = VerifiedIdentity(provider=SsoProvider.OIDC, subject="s-1", email="bob@example.com")
    sso_sign_in(identity=left_the_group, rules=rules)
    assert list(EnvironmentRole.objects.filter(user=bob).values_list("environment__slug", "role")) == [
        ("prod", "viewer")
    ]

    # A rule for one environment alone lets nobody in.
    with pytest.raises(SsoSignInRefused):
        sso_sign_in(
            identity=VerifiedIdentity(
                provider=SsoProvider.OIDC, subject="s-2", email="eve@other.test", groups=("staging-oncall",)
            ),
            rules=rules,
        )
