"""A person's role per environment: operator in staging, viewer in prod. Every class-scoped check
(the API's permission class, the screens' role check, objects of one class) uses the role for the
class's environment; the users API and screen show and change it, with where it came from."""

import pytest
from rest_framework.test import APIClient

from controlplane.roles import Role
from tests.workloads.pools import pooled_class
from workloads.models import AuditEvent, EnvironmentRole, PoolHold
from workloads.services.environments import environment_role_set
from workloads.services.tokens import api_token_issue

PAUSE = "/api/v1/classes/{}/pause/"


@pytest.fixture
def fleet(prod_and_staging):
    prod, staging = prod_and_staging["prod"], prod_and_staging["staging"]
    pooled_class("prod-docs", instances=2, environment=prod)
    pooled_class("staging-docs", instances=2, environment=staging)
    return {"prod": prod, "staging": staging}


def test_an_operator_in_staging_pauses_a_staging_class_and_not_a_prod_one(fleet, make_user, client_as):
    sam = make_user("sam-staging", Role.VIEWER)
    environment_role_set(actor=None, user=sam, environment=fleet["staging"], role=Role.OPERATOR)
    client = client_as(sam)
    staged = client.post(PAUSE.format("staging-docs"), {"reason": "bad deploy"}, format="json")
    assert staged.status_code == 202, staged.content
    refused = client.post(PAUSE.format("prod-docs"), {"reason": "bad deploy"}, format="json")
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    assert list(PoolHold.objects.values_list("workload_class__slug", flat=True)) == ["staging-docs"]
    # Reading prod is still theirs, by their own role.
    assert client.get(PAUSE.format("prod-docs")).status_code == 200


def test_an_override_also_lowers_a_role_and_tokens_follow_it(fleet, make_user, client_as, token_client):
    otto = make_user("otto-ops", Role.OPERATOR)
    environment_role_set(actor=None, user=otto, environment=fleet["prod"], role=Role.VIEWER)
    assert client_as(otto).post(PAUSE.format("prod-docs"), {"reason": "x"}, format="json").status_code == 403
    assert client_as(otto).post(PAUSE.format("staging-docs"), {"reason": "x"}, format="json").status_code == 202
    _token, raw = api_token_issue(actor=None, user=otto, name="bot")
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert bot.delete(PAUSE.format("prod-docs")).status_code == 403
    assert bot.delete(PAUSE.format("staging-docs")).status_code == 202


def test_the_screens_use_the_role_of_the_class_environment(fleet, make_user, client):
    sam = make_user("sam-staging", Role.VIEWER)
    environment_role_set(actor=None, user=sam, environment=fleet["staging"], role=Role.OPERATOR)
    client.force_login(sam)
    form = {"reason": "bad deploy", "expires_in_minutes": 60, "step": "confirm"}
    staged = client.post("/classes/staging-docs/pause/", form)
    assert staged.status_code in (200, 302), staged.status_code
    assert client.post("/classes/prod-docs/pause/", form).status_code == 403
    assert list(PoolHold.objects.values_list("workload_class__slug", flat=True)) == ["staging-docs"]
    # The buttons follow the same role: the staging class's page offers the pause, prod's does not.
    assert b"/classes/staging-docs/resume/" in client.get("/classes/staging-docs/pool/", HTTP_HX_REQUEST="true").content
    assert b"/classes/prod-docs/pause/" not in client.get("/classes/prod-docs/pool/", HTTP_HX_REQUEST="true").content
    assert b"/classes/prod-docs/pause/" in _as_operator_everywhere(client, "/classes/prod-docs/pool/")


def _as_operator_everywhere(client, url: str) -> bytes:
    """The same page for someone who may pause anywhere: the probe above is not blind."""
    from django.contrib.auth import get_user_model

    from workloads.services.users import user_create

    operator = get_user_model().objects.filter(username="any-operator").first() or user_create(
        actor=None, username="any-operator", role=Role.OPERATOR, password="correct-horse-battery-9"
    )
    client.force_login(operator)
    return client.get(url, HTTP_HX_REQUEST="true").content


def test_admins_set_roles_by_environment_through_the_users_api(fleet, make_user, client_as, admin_user):
    make_user("sam-staging", Role.VIEWER)
    api = client_as(admin_user)
    changed = api.patch("/api/v1/users/sam-staging/", {"environment_roles": {"staging": "operator"}}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["role"] == "viewer"
    assert changed.json()["environment_roles"] == [
        {"environment": "staging", "role": "operator", "source": "set by ada-admin"}
    ]
    event = AuditEvent.objects.get(action="user.environment_role")
    assert event.changes == {"role@staging": [None, "operator"]} and event.actor_label.startswith("ada-admin")

    back = api.patch("/api/v1/users/sam-staging/", {"environment_roles": {"staging": None}}, format="json")
    assert back.status_code == 200 and back.json()["environment_roles"] == []
    unknown = api.patch("/api/v1/users/sam-staging/", {"environment_roles": {"moon": "admin"}}, format="json")
    assert unknown.status_code == 400 and "environment_roles" in unknown.json()["errors"]
    bad_role = api.patch("/api/v1/users/sam-staging/", {"environment_roles": {"prod": "root"}}, format="json")
    assert bad_role.status_code == 400
    assert not EnvironmentRole.objects.exists()


def test_the_user_screen_shows_and_sets_roles_by_environment(fleet, make_user, client, admin_user):
    make_user("sam-staging", Role.VIEWER)
    client.force_login(admin_user)
    response = client.post("/users/sam-staging/environment-role/", {"environment": "staging", "role": "operator"})
    assert response.status_code == 302
    page = client.get("/users/sam-staging/").content.decode()
    staging_row = page.split('data-environment="staging"')[1].split("</tr>")[0]
    prod_row = page.split('data-environment="prod"')[1].split("</tr>")[0]
    assert "<strong>operator</strong>" in staging_row and "set by ada-admin" in staging_row
    assert "their own role" in prod_row
    assert (
        client.post("/users/sam-staging/environment-role/", {"environment": "moon", "role": "admin"}).status_code == 302
    )
    assert EnvironmentRole.objects.get().role == "operator"


def test_dead_letters_follow_the_role_in_their_class_environment(fleet, make_user, client_as):
    """Replays, previews, discards and edit-and-replay name their class in the body or the URL's
    dead letter: the role there decides, up (staging operator) or down (prod viewer)."""
    from tests.workloads.deadletter_helpers import dead_letter_row
    from workloads.models import WorkloadClass

    staged = dead_letter_row(WorkloadClass.objects.get(slug="staging-docs"))
    prodded = dead_letter_row(WorkloadClass.objects.get(slug="prod-docs"))
    sam = make_user("sam-staging", Role.VIEWER)
    environment_role_set(actor=None, user=sam, environment=fleet["staging"], role=Role.OPERATOR)
    api = client_as(sam)
    replay = {"workload_class": "staging-docs", "ids": [staged.pk], "dry_run": True}
    assert api.post("/api/v1/replays/", replay, format="json").status_code == 200
    assert (
        api.post(
            "/api/v1/replays/preview/", {"workload_class": "staging-docs", "ids": [staged.pk]}, format="json"
        ).status_code
        == 200
    )
    refused = api.post(
        "/api/v1/replays/", {**replay, "workload_class": "prod-docs", "ids": [prodded.pk]}, format="json"
    )
    assert refused.status_code == 403 and "prod-docs" in refused.json()["detail"]
    discard = {"workload_class": "prod-docs", "ids": [prodded.pk]}
    assert api.post("/api/v1/dead-letters/discard/", discard, format="json").status_code == 403
    assert (
        api.post(
            "/api/v1/triage-rules/", {"name": "x", "error_signature": "s", "action": "hold"}, format="json"
        ).status_code
        == 403
    )

    otto = make_user("otto-ops", Role.OPERATOR)
    environment_role_set(actor=None, user=otto, environment=fleet["prod"], role=Role.VIEWER)
    ops = client_as(otto)
    assert ops.post("/api/v1/dead-letters/discard/", discard, format="json").status_code == 403
    edit = ops.post(f"/api/v1/dead-letters/{prodded.pk}/edit-and-replay/", {"payload": {"x": 1}}, format="json")
    assert edit.status_code == 403
    kept = ops.post(
        "/api/v1/dead-letters/discard/", {"workload_class": "staging-docs", "ids": [staged.pk]}, format="json"
    )
    assert kept.status_code == 200, kept.content


def test_creating_a_class_needs_admin_in_its_requested_environment(fleet, make_user, client_as):
    """An admin only in staging creates staging's classes, none in prod (nor in the default
    environment, where their own role counts) and moves none into prod; an admin who is a viewer in
    prod creates none there."""
    from tests.factories import class_payload
    from workloads.models import WorkloadClass

    sam = make_user("sam-staging", Role.VIEWER)
    environment_role_set(actor=None, user=sam, environment=fleet["staging"], role=Role.ADMIN)
    api = client_as(sam)
    created = api.post("/api/v1/classes/", class_payload(slug="staged-new", environment="staging"), format="json")
    assert created.status_code == 201, created.content
    refused = api.post("/api/v1/classes/", class_payload(slug="prod-new", environment="prod"), format="json")
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert api.post("/api/v1/classes/", class_payload(slug="default-new"), format="json").status_code == 403
    moved = api.patch("/api/v1/classes/staged-new/", {"environment": "prod"}, format="json")
    assert moved.status_code == 403 and "prod" in moved.json()["detail"]

    ada = make_user("ada-prod-viewer", Role.ADMIN)
    environment_role_set(actor=None, user=ada, environment=fleet["prod"], role=Role.VIEWER)
    admin = client_as(ada)
    assert (
        admin.post("/api/v1/classes/", class_payload(slug="prod-new", environment="prod"), format="json").status_code
        == 403
    )
    assert (
        admin.post(
            "/api/v1/classes/", class_payload(slug="other-new", environment="staging"), format="json"
        ).status_code
        == 201
    )
    assert set(WorkloadClass.objects.values_list("slug", "environment__slug")) == {
        ("prod-docs", "prod"),
        ("staging-docs", "staging"),
        ("staged-new", "staging"),
        ("other-new", "staging"),
    }


def test_the_users_list_shows_roles_by_environment(fleet, make_user, client, client_as, admin_user):
    sam = make_user("sam-staging", None)  # no role of their own: only the override
    environment_role_set(actor=None, user=sam, environment=fleet["staging"], role=Role.OPERATOR)
    make_user("vic-viewer", Role.VIEWER)
    client.force_login(admin_user)
    page = client.get("/users/").content.decode()
    sam_row = page.split('href="/users/sam-staging/"')[1].split("</tr>")[0]
    vic_row = page.split('href="/users/vic-viewer/"')[1].split("</tr>")[0]
    assert 'data-environment="staging"' in sam_row and "operator in staging" in sam_row
    assert "env-role" not in vic_row
    listed = {row["username"]: row for row in client_as(admin_user).get("/api/v1/users/").json()["results"]}
    assert listed["sam-staging"]["environment_roles"] == [
        {"environment": "staging", "role": "operator", "source": "set by the system"}
    ]


def test_someone_with_only_an_override_reads_the_lists_of_that_environment(fleet, make_user, client_as):
    """No role of their own, viewer in staging: the classes, dead letters (and their groups),
    replays, actions and alert incidents lists answer with staging's rows only, a prod row is not
    found, and what needs a role of one's own stays refused; a viewer everywhere sees both."""
    from tests.workloads.deadletter_helpers import dead_letter_row
    from workloads.models import Action, ActionKind, WorkloadClass

    rows = {}
    for slug in ("prod-docs", "staging-docs"):
        workload_class = WorkloadClass.objects.get(slug=slug)
        rows[slug] = dead_letter_row(workload_class)
        Action.objects.create(kind=ActionKind.REPLAY, workload_class=workload_class, name=f"replay of {slug}")
    sam = make_user("sam-staging", None)
    environment_role_set(actor=None, user=sam, environment=fleet["staging"], role=Role.VIEWER)
    lists = {
        "/api/v1/classes/": "slug",
        "/api/v1/dead-letters/": "workload_class",
        "/api/v1/dead-letter-groups/": "workload_class",
        "/api/v1/replays/": "workload_class",
        "/api/v1/actions/": "workload_class",
    }
    for who, expected in ((sam, {"staging-docs"}), (make_user("vic", Role.VIEWER), {"prod-docs", "staging-docs"})):
        api = client_as(who)
        for url, key in lists.items():
            response = api.get(url)
            assert response.status_code == 200, (url, response.content)
            assert {row[key] for row in response.json()["results"]} == expected, url
        assert api.get("/api/v1/alert-incidents/").status_code == 200
    api = client_as(sam)
    assert api.get(f"/api/v1/dead-letters/{rows['staging-docs'].pk}/").status_code == 200
    assert api.get(f"/api/v1/dead-letters/{rows['prod-docs'].pk}/").status_code == 404
    assert api.get("/api/v1/classes/staging-docs/").status_code == 200
    assert api.get("/api/v1/classes/prod-docs/").status_code in (403, 404)
    assert api.get("/api/v1/users/").status_code == 403
    discard = {"workload_class": "staging-docs", "ids": [rows["staging-docs"].pk]}
    assert api.post("/api/v1/dead-letters/discard/", discard, format="json").status_code == 403
    assert client_as(make_user("nobody", None)).get("/api/v1/classes/").status_code == 403
