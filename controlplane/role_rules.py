"""Roles for people who sign in through single sign-on (OIDC or Identity-Aware Proxy).

`SSO_ROLE_RULES` is a comma-separated list of `KIND:VALUE=ROLE` rules, for example

    group:platform-admins=admin, group:oncall=operator, domain:example.com=viewer, email:bob@example.com=operator

- `email:` matches one address, `domain:` the part after the `@` (case-insensitive);
- `group:` matches one entry of the identity provider's group claim (`OIDC_GROUPS_CLAIM`), exactly.

A person gets the highest role any rule gives them, and the rule that gave it is kept as the
role's source (shown on the users screen and in the API). No matching rule: no sign-in.
"""

from dataclasses import dataclass

from controlplane.roles import Role

RULE_KINDS = ("email", "domain", "group")


@dataclass(frozen=True)
class RoleRule:
    kind: str
    value: str
    role: Role

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}={self.role.group_name}"

    def matches(self, *, email: str, groups: frozenset[str]) -> bool:
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
        try:
            role = Role.from_name(role_name)
        except ValueError as exc:
            raise ValueError(f"the rule {raw!r}: {exc}") from None
        rules.append(RoleRule(kind=kind, value=value, role=role))
    return tuple(rules)


@dataclass(frozen=True)
class RoleDecision:
    role: Role  # Role.NONE when no rule matched
    rule: RoleRule | None

    @property
    def source(self) -> str:
        return f"rule {self.rule}" if self.rule else "no rule matched"


def role_from_rules(rules: tuple[RoleRule, ...], *, email: str, groups) -> RoleDecision:
    groups = frozenset(str(group) for group in groups or ())
    best = RoleDecision(role=Role.NONE, rule=None)
    for rule in rules:
        # The first rule listed wins among rules giving the same role: the source is predictable.
        if rule.role > best.role and rule.matches(email=email, groups=groups):
            best = RoleDecision(role=rule.role, rule=rule)
    return best
