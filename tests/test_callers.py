"""tests/callers.py: every test gets new clients made from the module's callers, so what a response
set in one test's client (a cookie) is not sent by the next test's, while the session built once
with the module's rows still logs each client in."""

import pytest
from django.conf import settings

from controlplane.roles import Role
from tests.callers import clients_of, session_of, user_with_role
from tests.shared_rows import shared_rows


@pytest.fixture(scope="module")
def shared_callers(django_db_setup, django_db_blocker):
    with shared_rows(django_db_blocker):
        yield {"viewer": session_of(user_with_role("shared-viewer", Role.VIEWER))}


def _a_client_of_its_own(shared_callers):
    # Whichever test runs first, the other starts with the session cookie only.
    client = clients_of(shared_callers)["viewer"]
    assert set(client.cookies) == {settings.SESSION_COOKIE_NAME}
    assert client.get("/api/v1/me/").json()["username"] == "shared-viewer"
    assert client.get("/").status_code == 200  # a page with forms: the response sets the CSRF cookie
    assert settings.CSRF_COOKIE_NAME in client.cookies


@pytest.mark.django_db
def test_a_test_gets_a_client_logged_in_with_the_shared_session(shared_callers):
    _a_client_of_its_own(shared_callers)


@pytest.mark.django_db
def test_another_test_does_not_get_the_cookies_the_first_ones_responses_set(shared_callers):
    _a_client_of_its_own(shared_callers)
