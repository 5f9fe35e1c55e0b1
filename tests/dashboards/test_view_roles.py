"""Every dashboard view declares its role with dashboards.rendering.role_required, read here from
the URLconf (not typed in by hand): a new screen without a declared role fails, a read that asks
more than the viewer role must be listed below, and the role each mutating view declares for a POST
is the one tests/hardening/test_roles.py's REQUIRED table gives it (that test then checks the
callers against the table)."""

from django.urls import get_resolver

from controlplane.roles import Role
from tests.hardening.test_roles import REQUIRED

# Reads that ask more than the viewer role, each for a reason: people's details (sign-ins, tokens)
# are for admins; the rule form's live count of matches serves a form only operators may post.
HIGHER_READS = {"dashboards:user-detail": Role.ADMIN, "dashboards:triage-rule-preview": Role.OPERATOR}


def _dashboard_views() -> dict:
    [dashboards] = [p for p in get_resolver().url_patterns if getattr(p, "namespace", None) == "dashboards"]
    return {f"dashboards:{p.name}": p.callback for p in dashboards.url_patterns}


def test_every_dashboard_view_declares_its_role():
    views = _dashboard_views()
    assert len(views) > 40, "the dashboards URLconf was not found: the walk is broken"
    undeclared = [name for name, view in views.items() if not isinstance(getattr(view, "required_role", None), Role)]
    assert undeclared == []
    below_viewer = [name for name, view in views.items() if view.required_role < Role.VIEWER]
    assert below_viewer == []


def test_reads_declare_the_viewer_role():
    reads = {name: view for name, view in _dashboard_views().items() if ("POST", name) not in REQUIRED}
    assert "dashboards:overview" in reads
    declared = {name: view.required_role for name, view in reads.items()}
    expected = {name: HIGHER_READS.get(name, Role.VIEWER) for name in reads}
    assert declared == expected


def test_the_role_matrix_agrees_with_the_declared_roles():
    views = _dashboard_views()
    posts = {route: role for (method, route), role in REQUIRED.items() if route.startswith("dashboards:")}
    assert posts, "the matrix has no dashboard rows: the walk is broken"
    assert set(posts) <= set(views), set(posts) - set(views)
    declared = {route: views[route].required_post_role for route in posts}
    assert declared == posts
