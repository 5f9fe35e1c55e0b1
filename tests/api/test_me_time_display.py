"""PATCH /api/v1/me/ keeps the user's clock for the screens (UTC or the browser's zone): per user,
audited, validated, and the same service as the top bar's switch."""

import pytest
from rest_framework.test import APIClient

from controlplane.roles import Role
from workloads.models import AuditEvent, UserPreference
from workloads.selectors.users import user_time_display


@pytest.fixture
def viewer_client(db, make_user):
    user = make_user("vera", Role.VIEWER)
    client = APIClient()
    client.force_login(user)
    return client, user


def test_it_defaults_to_utc_and_keeps_a_change_per_user(viewer_client, make_user):
    client, user = viewer_client
    assert client.get("/api/v1/me/").json()["time_display"] == "utc"
    response = client.patch("/api/v1/me/", {"time_display": "local"}, format="json")
    assert response.status_code == 200 and response.json()["time_display"] == "local"
    assert client.get("/api/v1/me/").json()["time_display"] == "local"
    assert user_time_display(make_user("other", Role.VIEWER)) == "utc"  # only vera's changed
    event = AuditEvent.objects.get(action="user.time_display")
    assert event.actor_label == "vera" and event.changes == {"time_display": ["utc", "local"]}
    # The same value again changes nothing and records nothing.
    client.patch("/api/v1/me/", {"time_display": "local"}, format="json")
    assert AuditEvent.objects.filter(action="user.time_display").count() == 1
    assert UserPreference.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [({"time_display": "mars"}, "time_display"), ({}, "time_display"), ({"time_zone": "utc"}, "time_zone")],
)
def test_bad_input_is_a_400_that_says_what_is_valid(viewer_client, body, field):
    client, _user = viewer_client
    response = client.patch("/api/v1/me/", body, format="json")
    assert response.status_code == 400
    assert field in response.content.decode()
    if body.get("time_display") == "mars":
        assert response.json()["errors"]["time_display"] == [
            '"mars" is not a valid choice. Valid choices: "utc", "local".'
        ]
    assert not UserPreference.objects.exists()
