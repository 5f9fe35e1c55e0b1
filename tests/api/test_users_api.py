"""/api/v1/users/: admins list, invite or create people, change roles, deactivate, and see and
revoke their tokens; every change is audited and the last admin stays an admin."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from controlplane.roles import Role, user_role
from workloads.models import ApiToken, AuditEvent
from workloads.services.tokens import api_token_issue

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(admin_user, client_as):
    return client_as(admin_user)


def test_it_lists_users_with_role_and_where_it_came_from(admin_api, admin_user, viewer, operator):
    api_token_issue(actor=admin_user, user=operator, name="deploy-bot")
    rows = {row["username"]: row for row in admin_api.get("/api/v1/users/").json()["results"]}

    assert rows["otto-operator"]["role"] == "operator"
    assert rows["otto-operator"]["role_source"] == "set by the system"
    assert rows["otto-operator"]["active_tokens"] == 1
    assert rows["vera-viewer"]["role"] == "viewer" and rows["vera-viewer"]["is_active"] is True
    assert admin_api.get("/api/v1/users/?role=operator").json()["count"] == 1


def test_listing_takes_the_same_queries_for_many_users(admin_api, make_user):
    for n in range(3):
        make_user(f"few-{n}", Role.VIEWER)
    with CaptureQueriesContext(connection) as few:
        admin_api.get("/api/v1/users/")
    for n in range(20):
        make_user(f"many-{n}", Role.OPERATOR)
    with CaptureQueriesContext(connection) as many:
        assert admin_api.get("/api/v1/users/?page_size=100").status_code == 200
    assert len(many) == len(few)


def test_an_admin_invites_a_person_who_signs_in_by_email(admin_api, admin_user):
    response = admin_api.post("/api/v1/users/", {"username": "dana", "email": "dana@example.com", "role": "operator"})

    assert response.status_code == 201, response.json()
    assert response.json()["role"] == "operator"
    assert response.json()["role_source"] == "set by ada-admin"
    dana = get_user_model().objects.get(username="dana")
    assert not dana.has_usable_password()
    created = AuditEvent.objects.filter(action="user.create", target_id=str(dana.pk)).get()
    assert created.actor == admin_user and created.changes["email"] == [None, "dana@example.com"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "x", "role": "owner"}, "role"),
        ({"username": "bad name!", "role": "viewer"}, "username"),
        ({"username": "vera-viewer", "role": "viewer"}, "username"),
        ({"username": "weak", "role": "viewer", "password": "123"}, "password"),
        ({"username": "dup", "role": "viewer", "email": "taken@example.com"}, "email"),
    ],
    ids=["unknown-role", "bad-username", "taken-username", "weak-password", "taken-email"],
)
def test_bad_input_is_a_400_naming_the_field(admin_api, viewer, body, field):
    viewer.email = "taken@example.com"
    viewer.save()
    response = admin_api.post("/api/v1/users/", body)
    assert response.status_code == 400
    assert field in str(response.json())


def test_changing_a_role_is_audited_with_before_after_and_source(admin_api, admin_user, viewer):
    response = admin_api.patch("/api/v1/users/vera-viewer/", {"role": "operator"})

    assert response.status_code == 200 and response.json()["role"] == "operator"
    assert user_role(get_user_model().objects.get(pk=viewer.pk)) is Role.OPERATOR
    change = AuditEvent.objects.filter(action="user.set_role", target_id=str(viewer.pk)).first()
    assert change.actor == admin_user
    assert change.changes["role"] == [["viewer"], ["operator"]]
    assert change.changes["role_source"] == ["set by the system", "set by ada-admin"]


def test_deactivating_stops_sessions_and_tokens(admin_api, operator, client_as, token_client):
    session = client_as(operator)
    bot, _ = token_client(operator)
    assert admin_api.patch("/api/v1/users/otto-operator/", {"is_active": False}).status_code == 200
    assert session.get("/api/v1/me/").status_code in (401, 403)
    assert bot.get("/api/v1/me/").status_code == 401
    assert AuditEvent.objects.filter(action="user.deactivate", target_id=str(operator.pk)).exists()
    assert admin_api.patch("/api/v1/users/otto-operator/", {"is_active": True}).json()["is_active"] is True


def test_the_last_admin_cannot_demote_or_deactivate_themselves(admin_api, admin_user):
    demote = admin_api.patch("/api/v1/users/ada-admin/", {"role": "viewer"})
    assert demote.status_code == 400 and "last active admin" in str(demote.json())
    deactivate = admin_api.patch("/api/v1/users/ada-admin/", {"is_active": False})
    assert deactivate.status_code == 400
    assert user_role(get_user_model().objects.get(pk=admin_user.pk)) is Role.ADMIN


def test_with_a_second_admin_an_admin_may_step_down(admin_api, admin_user, make_user):
    make_user("second-admin", Role.ADMIN)
    assert admin_api.patch("/api/v1/users/ada-admin/", {"role": "operator"}).status_code == 200


def test_an_admin_cannot_deactivate_themselves(admin_api, make_user):
    make_user("second-admin", Role.ADMIN)
    assert admin_api.patch("/api/v1/users/ada-admin/", {"is_active": False}).status_code == 400


def test_an_empty_or_bad_patch_is_a_400(admin_api, viewer):
    assert admin_api.patch("/api/v1/users/vera-viewer/", {}).status_code == 400
    assert admin_api.patch("/api/v1/users/vera-viewer/", {"is_active": "maybe"}).status_code == 400
    assert admin_api.get("/api/v1/users/nobody/").status_code == 404


def test_an_admin_sees_and_revokes_a_persons_tokens(admin_api, admin_user, operator):
    api_token_issue(actor=admin_user, user=operator, name="one")
    api_token_issue(actor=admin_user, user=operator, name="two")
    listed = admin_api.get("/api/v1/users/otto-operator/tokens/").json()["results"]
    assert sorted(token["name"] for token in listed) == ["one", "two"]

    assert admin_api.post("/api/v1/users/otto-operator/revoke-tokens/").json() == {"revoked": 2}
    assert not ApiToken.objects.active().filter(user=operator).exists()
    assert AuditEvent.objects.filter(action="api_token.revoke", actor=admin_user).count() == 2


def test_a_username_the_database_refuses_is_a_404_not_a_500(admin_api):
    assert admin_api.get("/api/v1/users/a%00b/").status_code == 404
    assert admin_api.patch("/api/v1/users/a%00b/", {"role": "viewer"}).status_code == 404
    assert admin_api.get("/users/a%00b/").status_code == 404
