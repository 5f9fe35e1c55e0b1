"""Roles for people who sign in through single sign-on (OIDC or Identity-Aware Proxy).

`SSO_ROLE_RULES` is a comma-separated list of `KIND:VALUE=ROLE` rules, for example

    group:platform-admins=admin, google-group:oncall@example.com=operator, domain:example.com=viewer

- `email:` matches one address, `domain:` the part after the `@` (case-insensitive);
- `group:` matches one entry of the identity provider's group claim (`OIDC_GROUPS_CLAIM`), exactly;
- `google-group:` matches a member of that Google group, directly or through nested groups, asked
  of the Cloud Identity Groups API (workloads/providers/gcp/groups.py): behind Identity-Aware Proxy
  there is no group claim. The lookup is made only when such a rule could raise the role; when it
  fails the rule does not match (fail closed) and the person keeps what the other rules give.

A person gets the highest role any rule gives them, and the rule that gave it is kept as the
role's source (shown on the users screen and in the API). No matching rule: no sign-in.

`KIND:VALUE=ROLE@ENVIRONMENT` gives the role in one environment only (workloads.models.EnvironmentRole),
for example `group:staging-oncall=operator@staging`: such rules never decide whether a person may
sign in, only their role there; the highest matching one per environment wins, as above.
"""

import re
from dataclasses import dataclass, replace

from controlplane.roles import Role

RULE_KINDS = ("email", "domain", "group", "google-group")
ENVIRONMENT_SLUG = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")  # workloads.models.environments
GOOGLE_GROUP = "google-group"


@dataclass(frozen=True)
class RoleRule:
    kind: str
    value: str
    role: Role
    environment: str = ""  # an environment's slug: the role there only

    def __str__(self) -> str:
        where = f"@{self.environment}" if self.environment else ""
        return f"{self.kind}:{self.value}={self.role.group_name}{where}"

    def matches(self, *, email: str, groups: frozenset[str], google_groups: frozenset[str] = frozenset()) -> bool:
        if self.kind == GOOGLE_GROUP:
            return self.value.lower() in google_groups
        if self.kind == "group":
            return self.value in groups
        email = email.strip().lower()
        if self.kind == "email":
            return email == self.value.lower()
        return email.rpartition("@")[2] == self.value.lower()


def parse_role_rules(text: str) -> tuple[RoleRule, ...]:
    """The rules in `text`; ValueError naming the rule that cannot be read."""
    rules = []
    for raw in text.split(","):
        raw = raw.strip()
        if not raw:
            continue
        head, equals, role_name = raw.rpartition("=")
        kind, colon, value = head.partition(":")
        kind, value = kind.strip().lower(), value.strip()
        if not equals or not colon or kind not in RULE_KINDS or not value:
            raise ValueError(
                f"cannot read the rule {raw!r}: write KIND:VALUE=ROLE with KIND one of {', '.join(RULE_KINDS)}"
            )
        role_name, at, environment = role_name.partition("@")
        environment = environment.strip()
        if at and not ENVIRONMENT_SLUG.fullmatch(environment):
            raise ValueError(f"the rule {raw!r}: name the environment by its slug after the @ (ROLE@ENVIRONMENT)")
        try:
            role = Role.from_name(role_name)
        except ValueError as exc:
            raise ValueError(f"the rule {raw!r}: {exc}") from None
        rules.append(RoleRule(kind=kind, value=value, role=role, environment=environment))
    return tuple(rules)


@dataclass(frozen=True)
class RoleDecision:
    role: Role  # Role.NONE when no rule matched
    rule: RoleRule | None
    # Set when the Google groups were needed and could not be read (their rules did not match).
    google_groups_error: str = ""

    @property
    def source(self) -> str:
        if self.rule and self.rule.kind == GOOGLE_GROUP:
            return f"Google group {self.rule.value} (rule {self.rule})"
        return f"rule {self.rule}" if self.rule else "no rule matched"


class GoogleGroupsUnavailable(Exception):
    """Raised by a `google_groups` lookup that could not answer; the message says why."""


def role_from_rules(rules: tuple[RoleRule, ...], *, email: str, groups, google_groups=None) -> RoleDecision:
    """`google_groups(email)`: the person's Google group addresses (lower case), or
    GoogleGroupsUnavailable; called at most once, and only when a google-group rule could raise the
    role. Without it google-group rules never match."""
    groups = frozenset(str(group) for group in groups or ())
    best = RoleDecision(role=Role.NONE, rule=None)
    found: frozenset[str] | None = None
    error = ""
    for rule in rules:
        # The first rule listed wins among rules giving the same role: the source is predictable.
        if rule.role <= best.role or rule.environment:
            continue
        if rule.kind == GOOGLE_GROUP:
            if found is None and google_groups is not None and not error:
                try:
                    found = frozenset(google_groups(email))
                except GoogleGroupsUnavailable as exc:
                    error = str(exc) or type(exc).__name__
            if found is None:
                continue
        if rule.matches(email=email, groups=groups, google_groups=found or frozenset()):
            best = RoleDecision(role=rule.role, rule=rule)
    return RoleDecision(role=best.role, rule=best.rule, google_groups_error=error)


def environment_roles_from_rules(
    rules: tuple[RoleRule, ...], *, email: str, groups, google_groups=None
) -> dict[str, RoleDecision]:
    """For each environment that rules name, the role they give the person there (Role.NONE when
    none of them matches), decided like `role_from_rules`."""
    by_environment: dict[str, list[RoleRule]] = {}
    for rule in rules:
        if rule.environment:
            by_environment.setdefault(rule.environment, []).append(replace(rule, environment=""))
    decisions = {}
    for environment, scoped in by_environment.items():
        decision = role_from_rules(tuple(scoped), email=email, groups=groups, google_groups=google_groups)
        rule = replace(decision.rule, environment=environment) if decision.rule else None
        decisions[environment] = RoleDecision(
            role=decision.role, rule=rule, google_groups_error=decision.google_groups_error
        )
    return decisions
