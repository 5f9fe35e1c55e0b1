"""Someone whose only role is an environment override (a viewer in staging, no role of their own)
reads the schedules, compare, migrations and audit screens and their API lists, filtered to
staging: staging's schedules, plans, candidates and audit events, never prod's; a prod plan,
event or deployment is not found and a prod class is not a choice. The environment switcher lists
only staging. A viewer everywhere still sees both, and someone with no role at all none."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.roles import Role
from tests.factories import SchedulePolicyFactory, WorkloadClassFactory
from workloads.models import AuditEvent, Deployment
from workloads.services.environments import environment_role_set
from workloads.services.migration import migration_plan_create

SCREENS = ("/schedules/", "/compare/", "/migrations/", "/audit/")


@pytest.fixture
def world(prod_and_staging, admin_user):
    """In each environment: a legacy class, its Worker Pool class with a night schedule, a plan
    moving one to the other (audited under the legacy class) and a deployment of the pool."""
    made = {}
    for slug, environment in prod_and_staging.items():
        legacy = WorkloadClassFactory(
            slug=f"{slug}-legacy", runtime="cloud_run_service", runtime_resource=f"{slug}-svc", environment=environment
        )
        pool = WorkloadClassFactory(slug=f"{slug}-pool", environment=environment)
        SchedulePolicyFactory(workload_class=pool, name=f"{slug}-nights")
        plan = migration_plan_create(actor=admin_user, name=f"Move {slug}", source=legacy, target=pool)
        deployment = Deployment.objects.create(
            workload_class=pool, deployed_at=timezone.now() - timedelta(hours=3), source="api", version=f"{slug}-v1"
        )
        made[slug] = {"environment": environment, "plan": plan, "deployment": deployment}
    return made


@pytest.fixture
def sam(world, make_user):
    """No role of their own; a viewer in staging."""
    user = make_user("sam-staging", None)
    environment_role_set(actor=None, user=user, environment=world["staging"]["environment"], role=Role.VIEWER)
    return user


def _prod_named(page: str) -> list[str]:
    return [name for name in ("prod-legacy", "prod-pool", "prod-nights", "Move prod") if name in page]


def test_the_four_screens_show_staging_only(world, sam, client):
    client.force_login(sam)
    pages = {}
    for url in SCREENS:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        pages[url] = response.content.decode()
        assert _prod_named(pages[url]) == [], url
    assert "staging-pool" in pages["/schedules/"] and "staging-legacy" in pages["/schedules/"]
    assert "staging-legacy" in pages["/compare/"]
    assert "Move staging" in pages["/migrations/"]
    assert "staging-legacy" in pages["/audit/"]  # the plan's creation, audited under its source class
    # The navigation offers the four; what needs a role of one's own stays hidden and refused.
    for url in SCREENS:
        assert f'href="{url}"' in pages["/audit/"], url
    assert 'href="/users/"' not in pages["/audit/"] and client.get("/users/").status_code == 403


def test_a_prod_class_plan_or_deployment_named_in_the_url_is_not_shown(world, sam, client):
    client.force_login(sam)
    schedule = client.get("/schedules/?workload_class=prod-pool").content.decode()
    assert _prod_named(schedule) == [] and '<span class="slug">staging-legacy</span>' in schedule  # the first of theirs
    assert "staging-nights" in client.get("/schedules/?workload_class=staging-pool").content.decode()
    audit = client.get("/audit/?workload_class=prod-legacy").content.decode()
    assert "No event matches these filters" in audit  # the filter is echoed back, no prod event is
    compared = client.get(
        "/compare/?a_class=prod-pool&a_start=2026-01-01&a_end=2026-01-02&b_start=2026-01-03&b_end=2026-01-04"
    )
    page = compared.content.decode()  # refused beside the field, which echoes it back; not an option
    assert compared.status_code == 200 and "not one of the available choices" in page
    assert '<option value="prod-pool"' not in page and '<option value="staging-pool"' in page
    assert client.get(f"/compare/?deployment={world['prod']['deployment'].pk}").status_code == 404
    assert client.get(f"/compare/?deployment={world['staging']['deployment'].pk}").status_code == 200
    assert client.get(f"/migrations/{world['prod']['plan'].pk}/").status_code == 404
    assert client.get(f"/migrations/{world['staging']['plan'].pk}/").status_code == 200


def test_the_switcher_lists_only_their_environment(world, sam, client, viewer):
    client.force_login(sam)
    page = client.get("/migrations/").content.decode()
    switch = page.split('data-testid="env-switch"')[1].split("</nav>")[0]
    assert 'href="?environment=staging"' in switch and 'aria-current="true"' in switch
    assert "?environment=prod" not in switch and 'href="?environment="' not in switch  # no prod, no "all"
    client.force_login(viewer)
    switch = client.get("/migrations/").content.decode().split('data-testid="env-switch"')[1].split("</nav>")[0]
    assert all(f'href="?environment={slug}"' in switch for slug in ("", "prod", "staging"))


def test_the_api_lists_answer_with_staging_rows_only(world, sam, client_as):
    api = client_as(sam)
    events = api.get("/api/v1/audit-events/?page_size=100")
    assert events.status_code == 200, events.content
    assert {row["workload_class_slug"] for row in events.json()["results"]} == {"staging-legacy"}
    prod_event = AuditEvent.objects.get(action="migration_plan.create", workload_class_slug="prod-legacy")
    assert api.get(f"/api/v1/audit-events/{prod_event.pk}/").status_code == 404
    plans = api.get("/api/v1/migration-plans/")
    assert plans.status_code == 200 and [plan["name"] for plan in plans.json()] == ["Move staging"]
    for suffix in ("", "evidence/"):
        assert api.get(f"/api/v1/migration-plans/{world['prod']['plan'].pk}/{suffix}").status_code == 404
        assert api.get(f"/api/v1/migration-plans/{world['staging']['plan'].pk}/{suffix}").status_code == 200
    ranking = api.get("/api/v1/migration-candidates/").json()["ranking"]
    assert {row["workload_class"] for row in ranking} == {"staging-legacy", "staging-pool"}
    period = "a_start=2026-01-01T00:00Z&a_end=2026-01-02T00:00Z&b_start=2026-01-02T00:00Z&b_end=2026-01-03T00:00Z"
    assert api.get(f"/api/v1/comparisons/?a_class=staging-pool&{period}").status_code == 200
    refused = api.get(f"/api/v1/comparisons/?a_class=staging-pool&b_class=prod-pool&{period}")
    assert refused.status_code == 400 and "b_class" in refused.json()["errors"], refused.content
    assert api.get(f"/api/v1/comparisons/?deployment={world['prod']['deployment'].pk}").status_code == 400
    assert api.get(f"/api/v1/comparisons/?deployment={world['staging']['deployment'].pk}").status_code == 200
    # A class's schedule preview follows the role in its environment.
    assert api.get("/api/v1/classes/staging-pool/schedule-preview/").status_code == 200
    assert api.get("/api/v1/classes/prod-pool/schedule-preview/").status_code == 403


def test_a_viewer_everywhere_sees_both_and_no_role_sees_nothing(world, make_user, viewer, client, client_as):
    client.force_login(viewer)
    assert "prod-pool" in client.get("/schedules/").content.decode()
    assert "Move prod" in client.get("/migrations/").content.decode()
    assert "prod-legacy" in client.get("/audit/").content.decode()
    api = client_as(viewer)
    assert {p["name"] for p in api.get("/api/v1/migration-plans/").json()} == {"Move prod", "Move staging"}
    slugs = {row["workload_class_slug"] for row in api.get("/api/v1/audit-events/?page_size=100").json()["results"]}
    assert {"prod-legacy", "staging-legacy"} <= slugs
    nobody = make_user("nobody", None)
    client.force_login(nobody)
    assert [client.get(url).status_code for url in SCREENS] == [403] * len(SCREENS)
    api = client_as(nobody)
    for url in ("/api/v1/audit-events/", "/api/v1/migration-plans/", "/api/v1/migration-candidates/"):
        assert api.get(url).status_code == 403, url
