import pytest
from rest_framework.test import APIClient

from controlplane.roles import Role
from workloads.services.tokens import api_token_issue
from workloads.services.users import user_create


@pytest.fixture
def make_user(db):
    def make(username: str, role: Role | None = Role.VIEWER, password: str = "correct-horse-battery-9"):
        from django.contrib.auth import get_user_model

        if role is None:
            user = get_user_model().objects.create_user(username=username, password=password)
        else:
            user = user_create(actor=None, username=username, role=role, password=password)
        return user

    return make


# Personas, after healthchecks' alice/bob/charlie: one per role, plus a user with no role.
@pytest.fixture
def viewer(make_user):
    return make_user("vera-viewer", Role.VIEWER)


@pytest.fixture
def operator(make_user):
    return make_user("otto-operator", Role.OPERATOR)


@pytest.fixture
def admin_user(make_user):
    return make_user("ada-admin", Role.ADMIN)


@pytest.fixture
def outsider(make_user):
    return make_user("olga-outsider", None)


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def client_as(api):
    """client_as(user) -> an APIClient logged in with a session as that user."""

    def login(user):
        client = APIClient()
        client.force_login(user)
        return client

    return login


@pytest.fixture
def token_client():
    """token_client(user, scopes=None) -> (APIClient with a bearer token, token row)."""

    def make(user, scopes=None):
        token, raw = api_token_issue(actor=None, user=user, name="test-token", scopes=scopes)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client, token

    return make
