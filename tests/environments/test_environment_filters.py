"""Narrowing to one environment: `?environment=` on the API's lists, the screens' switcher (kept in
the session) on the overview, cost, incidents, dead-letter, triage, alerts and actions screens, and
incident mode in one environment."""

import pytest
from django.utils import timezone

from controlplane.roles import Role
from tests.workloads.deadletter_helpers import dead_letter_row
from tests.workloads.pools import pooled_class
from workloads.models import HoldState, IncidentMode, PoolHold
from workloads.services.environments import environment_role_set

INCIDENT_MODE = "/api/v1/incident-mode/"


@pytest.fixture
def fleet(prod_and_staging):
    prod, staging = prod_and_staging["prod"], prod_and_staging["staging"]
    classes = {
        "prod-batch": pooled_class("prod-batch", instances=2, environment=prod),
        "prod-api": pooled_class("prod-api", instances=2, tier="critical", environment=prod),
        "staging-batch": pooled_class("staging-batch", instances=1, environment=staging),
    }
    return {"prod": prod, "staging": staging, **classes}


def _slugs(response, key="workload_class") -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(row[key] for row in response.json()["results"])


def test_the_api_lists_narrow_to_one_environment(fleet, client_as, viewer):
    api = client_as(viewer)
    dead_letter_row(fleet["prod-batch"])
    dead_letter_row(fleet["staging-batch"])
    assert _slugs(api.get("/api/v1/dead-letters/?environment=staging")) == ["staging-batch"]
    assert _slugs(api.get("/api/v1/dead-letters/")) == ["prod-batch", "staging-batch"]
    cost = api.get("/api/v1/cost/?environment=staging").json()
    assert [line["key"] for line in cost["lines"]] == ["staging-batch"]
    everything = api.get("/api/v1/cost/").json()
    assert len(everything["lines"]) == 3
    for url in (
        "/api/v1/dead-letters/?environment=moon",
        "/api/v1/cost/?environment=moon",
        "/api/v1/alert-incidents/?environment=moon",
        "/api/v1/actions/?environment=moon",
        INCIDENT_MODE + "?environment=moon",
    ):
        response = api.get(url)
        assert response.status_code == 400 and "environment" in response.json()["errors"], (url, response.content)
    assert api.get("/api/v1/alert-incidents/?environment=staging").status_code == 200


def test_incident_mode_in_one_environment_pauses_only_its_deferrable_pools(fleet, client_as, make_user):
    sam = make_user("sam-staging", Role.VIEWER)
    environment_role_set(actor=None, user=sam, environment=fleet["staging"], role=Role.OPERATOR)
    api = client_as(sam)
    # Their own role cannot enter incident mode for every environment, nor in prod.
    assert api.post(INCIDENT_MODE, {"reason": "noisy"}, format="json").status_code == 403
    assert api.post(INCIDENT_MODE + "?environment=prod", {"reason": "noisy"}, format="json").status_code == 403
    entered = api.post(INCIDENT_MODE + "?environment=staging", {"reason": "load test"}, format="json")
    assert entered.status_code == 202, entered.content
    body = entered.json()
    assert body["active"] and body["incident"]["environment"] == "staging"
    assert [h["workload_class"] for h in body["incident"]["holds"]] == ["staging-batch"]
    # Nothing for every environment is active, and prod can have one of its own at the same time.
    assert api.get(INCIDENT_MODE).json()["active"] is False
    assert api.get(INCIDENT_MODE + "?environment=staging").json()["active"] is True
    admin = client_as(make_user("root-admin", Role.ADMIN))
    prod = admin.post(INCIDENT_MODE + "?environment=prod", {"reason": "prod too"}, format="json")
    assert prod.status_code == 202 and [h["workload_class"] for h in prod.json()["incident"]["holds"]] == ["prod-batch"]
    assert IncidentMode.objects.filter(ended_at__isnull=True).count() == 2

    exited = api.delete(INCIDENT_MODE + "?environment=staging")
    assert exited.status_code == 202, exited.content
    assert set(PoolHold.objects.filter(state=HoldState.ACTIVE).values_list("workload_class__slug", flat=True)) == {
        "prod-batch"
    }
    assert IncidentMode.objects.get(environment=fleet["prod"]).ended_at is None


def test_the_switcher_narrows_the_screens_and_the_session_remembers_it(fleet, client, viewer):
    client.force_login(viewer)
    everything = client.get("/").content.decode()
    assert 'data-testid="env-switch"' in everything
    assert "prod-api" in everything and "staging-batch" in everything
    staged = client.get("/?environment=staging").content.decode()
    assert "staging-batch" in staged and "prod-api" not in staged and "1 class in staging" in staged
    # The choice follows the viewer to the next screens.
    again = client.get("/").content.decode()
    assert "prod-api" not in again
    cost = client.get("/cost/").content.decode()
    assert "staging-batch" in cost and "prod-batch" not in cost and "environment=staging" in cost
    cleared = client.get("/?environment=").content.decode()
    assert "prod-api" in cleared and "staging-batch" in cleared


def test_the_incidents_screen_enters_incident_mode_in_the_chosen_environment(fleet, client, make_user):
    sam = make_user("sam-staging", Role.VIEWER)
    environment_role_set(actor=None, user=sam, environment=fleet["staging"], role=Role.OPERATOR)
    client.force_login(sam)
    form = {"reason": "load test", "expires_in_minutes": 60, "step": "confirm"}
    assert client.post("/incidents/enter/", form).status_code == 403  # every environment: not theirs
    assert "staging" in client.get("/incidents/?environment=staging").content.decode()
    entered = client.post("/incidents/enter/", form)
    assert entered.status_code == 302, entered.status_code
    incident = IncidentMode.objects.get()
    assert incident.environment == fleet["staging"]
    assert list(incident.holds.values_list("workload_class__slug", flat=True)) == ["staging-batch"]
    banner = client.get("/").content.decode()
    assert "Incident mode is active in staging" in banner
    assert incident.expires_at > timezone.now()


def test_a_hostile_environment_parameter_is_a_clear_answer_not_a_crash(fleet, client_as, client, admin_user):
    api = client_as(admin_user)
    for url in (INCIDENT_MODE, "/api/v1/alert-incidents/", "/api/v1/cost/", "/api/v1/classes/"):
        response = api.get(url, {"environment": "st\x00aging"})
        assert response.status_code == 400, (url, response.status_code)
    patched = api.patch("/api/v1/users/ada-admin/", {"environment_roles": {"st\x00aging": "viewer"}}, format="json")
    assert patched.status_code == 400
    client.force_login(admin_user)
    assert client.get("/", {"environment": "st\x00aging"}).status_code == 200  # every environment


def test_the_switcher_narrows_dead_letters_triage_alerts_and_actions(fleet, client, viewer):
    """Each screen shows both environments' rows for 'all' (so the probe is not blind) and only
    staging's once the switcher (remembered in the session) says staging."""
    from tests.factories import SloFactory
    from tests.notifications.helpers import open_alert, sync
    from workloads.models import Action, ActionKind, SloIncident, TriageRule

    now = timezone.now()
    for slug in ("prod-batch", "staging-batch"):
        dead_letter_row(fleet[slug])
        Action.objects.create(kind=ActionKind.REPLAY, workload_class=fleet[slug], name=f"action of {slug}")
        TriageRule.objects.create(
            name=f"rule of {slug}", workload_class=fleet[slug], error_signature="s", action="hold"
        )
        open_alert(SloFactory(workload_class=fleet[slug], kind="success_ratio"), "page-1h-5m", "page", at=now)
    TriageRule.objects.create(name="rule of every class", error_signature="s", action="hold")
    sync(now)
    assert SloIncident.objects.count() == 2
    client.force_login(viewer)
    pages = {
        "/dead-letters/": ("/dead-letters/messages/?workload_class={}",),
        "/dead-letters/rules/": ("rule of {}",),
        "/alerts/": ("/classes/{}/",),
        "/actions/": ("action of {}",),
    }
    for url, probes in pages.items():
        everything = client.get(url + "?environment=").content.decode()
        staged = client.get(url + "?environment=staging").content.decode()
        remembered = client.get(url).content.decode()
        for probe in probes:
            assert probe.format("prod-batch") in everything and probe.format("staging-batch") in everything, url
            assert probe.format("staging-batch") in staged and probe.format("prod-batch") not in staged, url
            assert probe.format("prod-batch") not in remembered, url
    assert "rule of every class" in client.get("/dead-letters/rules/").content.decode()
    messages = client.get("/dead-letters/messages/?workload_class=staging-batch").content.decode()
    assert "staging-batch" in messages


def test_someone_with_only_an_override_reads_the_switchers_screens_of_that_environment(fleet, client, make_user):
    """No role of their own, viewer in staging: the screens that follow the switcher open on staging
    and stay there (asking for prod or every environment still shows staging's), the navigation
    offers them, and the other screens stay refused."""
    for slug in ("prod-batch", "staging-batch"):
        dead_letter_row(fleet[slug])
    sam = make_user("sam-staging", None)
    environment_role_set(actor=None, user=sam, environment=fleet["staging"], role=Role.VIEWER)
    client.force_login(sam)
    for url in ("/", "/?environment=prod", "/?environment=", "/dead-letters/", "/actions/", "/alerts/", "/cost/"):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert "prod-batch" not in page and "prod-api" not in page, url
    assert "staging-batch" in client.get("/").content.decode()
    assert "staging-batch" in client.get("/dead-letters/").content.decode()
    assert 'href="/dead-letters/"' in client.get("/").content.decode()
    assert client.get("/audit/").status_code == 200  # narrowed too (tests/environments/test_override_readers.py)
    assert client.get("/users/").status_code == 403
    nobody = make_user("nobody", None)
    client.force_login(nobody)
    assert client.get("/").status_code == 403
