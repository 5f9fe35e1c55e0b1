"""CSRF: a logged-in browser session cannot be made to change anything by another site. Every
route of the site (dashboards, login, logout, admin pages of every registered model) refuses a
POST without the CSRF token, and so does every mutating API operation called with a session
(bearer tokens are not ambient credentials, so they need none). With the token (the way htmx
sends it, in the X-CSRFToken header from <body hx-headers>), the same POST goes through. Every
form in the templates carries the token."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.admin import site as admin_site
from django.test import Client
from django.urls import get_resolver, reverse
from django.urls.converters import IntConverter
from drf_spectacular.generators import SchemaGenerator

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from workloads.models import Action, ActionState
from workloads.services.actions import action_request

TEMPLATES = Path(settings.BASE_DIR) / "templates"
MUTATING = {"post", "put", "patch", "delete"}


@pytest.fixture
def admin_session(make_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("csrf-admin", Role.ADMIN))
    return client


@pytest.fixture
def pending_action(db):
    WorkloadClassFactory(slug="csrf-class")
    return action_request(kind="pause", actor=None, target="csrf-class", enqueue=False)


def _site_urls(action_id: int) -> list[str]:
    resolver = get_resolver()
    [dashboards] = [p for p in resolver.url_patterns if getattr(p, "namespace", None) == "dashboards"]
    urls = [reverse("login"), reverse("logout")]
    for pattern in dashboards.url_patterns:
        # CSRF is checked before the view runs, so any id of the right type will do.
        kwargs = {
            key: (action_id if isinstance(converter, IntConverter) else "csrf-class")
            for key, converter in pattern.pattern.converters.items()
        }
        urls.append(reverse(f"dashboards:{pattern.name}", kwargs=kwargs))
    for model in admin_site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls += [reverse(f"{prefix}_add"), reverse(f"{prefix}_change", args=[1]), reverse(f"{prefix}_delete", args=[1])]
    return urls


def test_every_page_refuses_a_post_without_the_token(admin_session, pending_action):
    urls = _site_urls(pending_action.pk)
    assert len(urls) > 20
    for url in urls:
        response = admin_session.post(url, {"reason": "csrf"})
        assert response.status_code == 403, url
        assert "This form has expired" in response.content.decode(), url  # the CSRF page, not a role check
    pending_action.refresh_from_db()
    assert pending_action.state == ActionState.PENDING and not pending_action.cancel_requested


def test_the_htmx_header_token_lets_the_same_post_through(admin_session, pending_action):
    page = admin_session.get(reverse("dashboards:action-detail", kwargs={"action_id": pending_action.pk}))
    [token] = re.findall(r'hx-headers=\'\{"x-csrftoken": "([^"]+)"\}\'', page.content.decode())
    url = reverse("dashboards:action-cancel", kwargs={"action_id": pending_action.pk})
    response = admin_session.post(url, headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 286  # htmx's "stop polling": the action is over
    assert Action.objects.get(pk=pending_action.pk).state == ActionState.CANCELLED


def test_every_mutating_api_operation_refuses_a_session_without_the_token(admin_session, pending_action):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = [(m, path) for path, item in schema["paths"].items() for m in item if m in MUTATING]
    assert len(operations) > 20
    for method, path in operations:
        url = path.format(slug="csrf-class", id=pending_action.pk, name="x", username="x")
        response = getattr(admin_session, method)(url, "{}", content_type="application/json")
        assert response.status_code == 403, (method, url)
        assert response.json()["detail"].startswith("CSRF Failed"), (method, url)


def test_every_form_in_the_templates_carries_the_token():
    forms = 0
    for template in TEMPLATES.rglob("*.html"):
        for form in re.findall(r"<form\b.*?</form>", template.read_text(), flags=re.S | re.I):
            if re.search(r'method="post"', form, flags=re.I):
                forms += 1
                assert "{% csrf_token %}" in form, f"{template.relative_to(TEMPLATES)}: {form[:120]}"
    assert forms >= 3
    # htmx requests (hx-post and friends) take it from the body's hx-headers, on every page.
    assert """<body hx-headers='{"x-csrftoken": "{{ csrf_token }}"}'""" in (TEMPLATES / "base.html").read_text()
