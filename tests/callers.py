"""The kinds of caller of a permission matrix whose world is built once per module (tests/shared_rows.py).

shared_rows rolls back what a test writes to the database, but a client object is no row: a
response may set a cookie (a page's messages, a CSRF token) that a client shared by the module's
tests would carry into the next test. So the module's world keeps each caller's credentials (the
key of a session stored with the shared rows, or a bearer token) and every test gets new clients
made from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.test import APIClient

from controlplane.roles import Role
from workloads.services.tokens import api_token_issue
from workloads.services.users import user_create

PASSWORD = "correct-horse-battery-9"


@dataclass(frozen=True)
class Caller:
    """How a kind of caller authenticates; neither field: anonymous."""

    session_key: str = ""
    bearer: str = ""

    def client(self) -> APIClient:
        from django.conf import settings

        client = APIClient()
        if self.session_key:
            client.cookies[settings.SESSION_COOKIE_NAME] = self.session_key
        if self.bearer:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.bearer}")
        return client


ANONYMOUS = Caller()


def user_with_role(username: str, role: Role | None, password: str = PASSWORD):
    """A user with that role (None: a user without any role); tests/conftest.py's make_user."""
    from django.contrib.auth import get_user_model

    if role is None:
        return get_user_model().objects.create_user(username=username, password=password)
    return user_create(actor=None, username=username, role=role, password=password)


def session_of(user) -> Caller:
    """A browser session of the user, stored in the database like any row."""
    from django.conf import settings

    client = APIClient()
    client.force_login(user)
    return Caller(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)


def token_of(user, name: str, scopes: list[str] | None = None) -> Caller:
    _token, raw = api_token_issue(actor=None, user=user, name=name, scopes=scopes)
    return Caller(bearer=raw)


def clients_of(callers: dict[str, Caller]) -> dict[str, APIClient]:
    """One new client per kind of caller, for one test."""
    return {name: caller.client() for name, caller in callers.items()}
