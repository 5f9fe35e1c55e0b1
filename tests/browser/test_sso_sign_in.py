"""Single sign-on in Chromium: the login page's button, the OpenID Connect provider (served
in-process with real signatures, tests/identity/provider.py) and back, signed in with the role the
group claim gives; a person without a role lands on the login page with the reason."""

import re

import pytest
from playwright.sync_api import expect

from controlplane.role_rules import parse_role_rules
from tests.browser.conftest import screenshot
from tests.identity.provider import OidcProvider


@pytest.fixture
def oidc(settings):
    provider = OidcProvider().start()
    for name, value in provider.settings().items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "controlplane.oidc.OidcBackend"]
    settings.SSO_ROLE_RULES = parse_role_rules("group:oncall=operator")
    yield provider
    provider.stop()


def test_a_person_signs_in_through_the_identity_provider(new_page, oidc, demo_fleet):
    oidc.next_user = {"sub": "okta|42", "email": "dana@example.com", "groups": ["oncall"]}
    page = new_page()
    page.goto("/cost/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/cost/$"))
    screenshot(page, "login-sso")
    page.get_by_role("link", name="Sign in with Test IdP").click()

    expect(page).to_have_url(re.compile(r"/cost/$"))
    expect(page.locator(".account")).to_contain_text("dana@example.com")
    expect(page.locator(".account")).to_contain_text("operator")
    assert oidc.token_requests and oidc.token_requests[-1]["code_verifier"]
    assert not page.js_errors


def test_a_person_without_a_role_is_told_why(new_page, oidc, demo_fleet):
    oidc.next_user = {"sub": "okta|43", "email": "eve@example.com", "groups": ["interns"]}
    page = new_page()
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Sign in with Test IdP").click()

    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_role("alert")).to_contain_text("No role rule gives eve@example.com a role here")
