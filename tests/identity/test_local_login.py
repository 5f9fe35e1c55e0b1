"""Local passwords can be turned off when single sign-on is set up; API tokens keep working."""

import subprocess
import sys

import pytest

from tests.identity.conftest import SSO_BACKENDS

pytestmark = pytest.mark.django_db


@pytest.fixture
def passwords_off(oidc_settings):
    oidc_settings.LOCAL_PASSWORD_LOGIN = False
    oidc_settings.AUTHENTICATION_BACKENDS = [b for b in SSO_BACKENDS if not b.endswith("ModelBackend")]
    return oidc_settings


def test_the_login_page_has_no_password_form_and_refuses_passwords(client, passwords_off, operator):
    page = client.get("/accounts/login/").content.decode()
    assert 'name="password"' not in page and "Local passwords are turned off" in page
    assert "Sign in with Test IdP" in page
    response = client.post("/accounts/login/", {"username": operator.username, "password": "correct-horse-battery-9"})
    assert response.status_code == 403
    assert client.get("/").status_code == 302  # still not signed in


def test_the_admin_and_the_api_refuse_passwords_too(client, passwords_off, operator):
    assert not client.login(username=operator.username, password="correct-horse-battery-9")


def test_api_tokens_still_work(passwords_off, operator, token_client):
    api, _ = token_client(operator)
    assert api.get("/api/v1/me/").status_code == 200


def test_with_passwords_on_the_form_still_signs_in(client, oidc_settings, operator):
    response = client.post("/accounts/login/", {"username": operator.username, "password": "correct-horse-battery-9"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_turning_passwords_off_without_single_sign_on_stops_start_up(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "1", "VAR_DIR": str(tmp_path), "LOCAL_PASSWORD_LOGIN": "0"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "LOCAL_PASSWORD_LOGIN=0 needs single sign-on" in result.stderr


def test_a_bad_role_rule_stops_start_up_naming_the_variable(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "1", "VAR_DIR": str(tmp_path), "SSO_ROLE_RULES": "group:x=owner"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SSO_ROLE_RULES" in result.stderr and "owner" in result.stderr
