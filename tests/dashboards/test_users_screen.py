"""The users screen: admins only; invite, change a role, deactivate, see and revoke tokens, each
through the audited services."""

import pytest
from django.contrib.auth import get_user_model

from controlplane.roles import Role, user_role
from workloads.models import ApiToken, AuditEvent
from workloads.services.tokens import api_token_issue

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("persona", ["viewer", "operator"])
def test_only_admins_open_it(client, request, persona):
    client.force_login(request.getfixturevalue(persona))
    assert client.get("/users/").status_code == 403
    assert client.post("/users/vera-viewer/role/", {"role": "admin"}).status_code == 403


def test_it_lists_people_with_role_source_and_tokens(admin_client, admin_user, operator):
    api_token_issue(actor=admin_user, user=operator, name="deploy-bot")
    page = admin_client.get("/users/").content.decode()
    assert 'data-user="otto-operator"' in page and "set by the system" in page
    detail = admin_client.get("/users/otto-operator/").content.decode()
    assert 'data-token="deploy-bot"' in detail


def test_the_navigation_shows_users_to_admins_only(admin_client, client, viewer):
    assert 'href="/users/"' in admin_client.get("/audit/").content.decode()
    client.force_login(viewer)
    assert 'href="/users/"' not in client.get("/audit/").content.decode()


def test_an_admin_invites_someone(admin_client):
    response = admin_client.post("/users/", {"username": "dana", "email": "dana@example.com", "role": "operator"})
    assert response.status_code == 302 and response["Location"] == "/users/dana/"
    dana = get_user_model().objects.get(username="dana")
    assert user_role(dana) is Role.OPERATOR and not dana.has_usable_password()


def test_a_taken_username_is_shown_on_the_form(admin_client, viewer):
    response = admin_client.post("/users/", {"username": "vera-viewer", "role": "viewer"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_an_admin_changes_a_role_and_it_is_audited(admin_client, admin_user, viewer):
    response = admin_client.post("/users/vera-viewer/role/", {"role": "operator"}, follow=True)
    assert "vera-viewer is now operator" in response.content.decode()
    assert user_role(get_user_model().objects.get(pk=viewer.pk)) is Role.OPERATOR
    assert AuditEvent.objects.filter(action="user.set_role", actor=admin_user, target_id=str(viewer.pk)).exists()


def test_the_last_admin_is_told_why_they_cannot_step_down(admin_client, admin_user):
    response = admin_client.post("/users/ada-admin/role/", {"role": "viewer"}, follow=True)
    assert "last active admin" in response.content.decode()
    assert user_role(get_user_model().objects.get(pk=admin_user.pk)) is Role.ADMIN


def test_deactivate_and_reactivate(admin_client, operator):
    admin_client.post("/users/otto-operator/active/", {"active": "0"})
    assert not get_user_model().objects.get(pk=operator.pk).is_active
    admin_client.post("/users/otto-operator/active/", {"active": "1"})
    assert get_user_model().objects.get(pk=operator.pk).is_active


def test_revoke_one_token_or_all(admin_client, admin_user, operator):
    one, _ = api_token_issue(actor=admin_user, user=operator, name="one")
    api_token_issue(actor=admin_user, user=operator, name="two")
    admin_client.post(f"/users/otto-operator/tokens/{one.pk}/revoke/")
    assert list(ApiToken.objects.active().filter(user=operator).values_list("name", flat=True)) == ["two"]
    response = admin_client.post("/users/otto-operator/tokens/revoke/", follow=True)
    assert "Revoked 1 token of otto-operator" in response.content.decode()
    assert not ApiToken.objects.active().filter(user=operator).exists()


def test_a_token_of_someone_else_is_not_found(admin_client, admin_user, operator, viewer):
    token, _ = api_token_issue(actor=admin_user, user=viewer, name="theirs")
    assert admin_client.post(f"/users/otto-operator/tokens/{token.pk}/revoke/").status_code == 404
