import pytest

from controlplane.role_rules import parse_role_rules, role_from_rules
from controlplane.roles import Role

RULES = parse_role_rules(
    "group:admins=admin, group:oncall=operator, domain:Example.com=viewer, email:bob@partner.test=operator"
)


@pytest.mark.parametrize(
    ("email", "groups", "role", "rule"),
    [
        ("alice@example.com", ["oncall"], Role.OPERATOR, "group:oncall=operator"),
        ("alice@EXAMPLE.com", [], Role.VIEWER, "domain:Example.com=viewer"),
        ("root@elsewhere.test", ["admins", "oncall"], Role.ADMIN, "group:admins=admin"),
        ("Bob@Partner.test", [], Role.OPERATOR, "email:bob@partner.test=operator"),
        ("eve@example.com.evil.test", ["Oncall"], Role.NONE, None),
    ],
)
def test_it_gives_the_highest_role_of_the_matching_rules(email, groups, role, rule):
    decision = role_from_rules(RULES, email=email, groups=groups)
    assert decision.role is role
    assert (str(decision.rule) if decision.rule else None) == rule


@pytest.mark.parametrize(
    "text", ["group:x", "team:x=admin", "group:=admin", "group:x=owner", "domain:x=none", "x=admin"]
)
def test_an_unreadable_rule_is_refused_naming_it(text):
    with pytest.raises(ValueError, match="rule"):
        parse_role_rules(text)


def test_no_rules_is_no_roles():
    assert parse_role_rules(" , ") == ()
    assert role_from_rules((), email="a@b.c", groups=["x"]).role is Role.NONE
