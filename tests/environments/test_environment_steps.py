"""Migration steps and incident acknowledgements follow the role in their classes' environment (as
pauses and dead letters do): an operator only in staging moves staging's plan and acknowledges
staging's incident, and an operator who is a viewer in prod does neither in prod, through the API,
the screens and the buttons the screens offer."""

import pytest
from django.utils import timezone

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from tests.notifications.helpers import make_slo, open_alert, sync
from tests.workloads.pools import run_pending
from workloads.models import ActionKind, Environment, MigrationDecision, SloIncident
from workloads.services.environments import environment_role_set
from workloads.services.migration import migration_plan_create


@pytest.fixture
def world(db, admin_user):
    made = {}
    for slug in ("prod", "staging"):
        environment = Environment.objects.create(
            slug=slug,
            name=slug.title(),
            projects=[f"p-{slug}"],
            regions=["us-central1"],
            monitoring_project=f"p-{slug}",
        )
        old = WorkloadClassFactory(
            slug=f"{slug}-legacy", runtime="cloud_run_service", runtime_resource=f"{slug}-svc", environment=environment
        )
        new = WorkloadClassFactory(slug=f"{slug}-pool", environment=environment)
        plan = migration_plan_create(actor=admin_user, name=f"Move {slug}", source=old, target=new)
        slo = make_slo(f"{slug}-paging", environment=environment)
        open_alert(slo, "page-1h-5m", "page", at=timezone.now())
        made[slug] = {"environment": environment, "plan": plan}
    sync(timezone.now())
    for slug in ("prod", "staging"):
        made[slug]["incident"] = SloIncident.objects.get(slo__workload_class__slug=f"{slug}-paging")
    return made


@pytest.fixture
def sam(world, make_user):
    """A viewer everywhere but an operator in staging."""
    user = make_user("sam-staging", Role.VIEWER)
    environment_role_set(actor=None, user=user, environment=world["staging"]["environment"], role=Role.OPERATOR)
    return user


@pytest.fixture
def otto(world, make_user):
    """An operator everywhere but a viewer in prod."""
    user = make_user("otto-ops", Role.OPERATOR)
    environment_role_set(actor=None, user=user, environment=world["prod"]["environment"], role=Role.VIEWER)
    return user


def test_the_api_steps_and_acknowledges_with_the_role_in_the_class_environment(world, sam, otto, client_as):
    staged, prodded = world["staging"], world["prod"]
    api = client_as(sam)
    advanced = api.post(f"/api/v1/migration-plans/{staged['plan'].pk}/advance/", {"to_phase": "canary"}, format="json")
    assert advanced.status_code == 202, advanced.content
    refused = api.post(f"/api/v1/migration-plans/{prodded['plan'].pk}/rollback/", {}, format="json")
    assert refused.status_code == 403 and "prod-legacy" in refused.json()["detail"]
    ack = "/api/v1/alert-incidents/{}/acknowledge/"
    assert api.post(ack.format(staged["incident"].pk), {"note": "mine"}, format="json").status_code == 200
    assert api.post(ack.format(prodded["incident"].pk), {"note": "mine"}, format="json").status_code == 403

    ops = client_as(otto)
    assert ops.post(f"/api/v1/migration-plans/{prodded['plan'].pk}/rollback/", {}, format="json").status_code == 403
    assert ops.post(ack.format(prodded["incident"].pk), {}, format="json").status_code == 403
    assert ops.get(f"/api/v1/alert-incidents/{prodded['incident'].pk}/").status_code == 200
    run_pending(kind=ActionKind.MIGRATION_STEP)  # sam's step done: the plan takes another
    assert ops.post(f"/api/v1/migration-plans/{staged['plan'].pk}/rollback/", {}, format="json").status_code == 202
    assert set(MigrationDecision.objects.values_list("plan__source__slug", flat=True)) == {"staging-legacy"}
    assert list(SloIncident.objects.filter(acknowledged_at__isnull=False).values_list("key", flat=True)) == [
        staged["incident"].key
    ]


def test_the_screens_step_acknowledge_and_offer_buttons_by_the_class_environment(world, sam, otto, client):
    staged, prodded = world["staging"], world["prod"]
    client.force_login(sam)
    page = client.get(f"/migrations/{staged['plan'].pk}/").content.decode()
    assert 'data-to="canary"' in page
    assert 'data-to="canary"' not in client.get(f"/migrations/{prodded['plan'].pk}/").content.decode()
    alerts = client.get("/alerts/").content.decode()
    assert f"/alerts/{staged['incident'].pk}/acknowledge/" in alerts
    assert f"/alerts/{prodded['incident'].pk}/acknowledge/" not in alerts
    assert client.post(f"/migrations/{prodded['plan'].pk}/rollback/", {"reason": "x"}).status_code == 403
    assert client.post(f"/alerts/{prodded['incident'].pk}/acknowledge/", {"note": "x"}).status_code == 403
    assert client.post(f"/migrations/{staged['plan'].pk}/rollback/", {"reason": "x"}).status_code == 302
    assert client.post(f"/alerts/{staged['incident'].pk}/acknowledge/", {"note": "x"}).status_code == 302

    client.force_login(otto)
    assert client.post(f"/migrations/{prodded['plan'].pk}/advance/", {"to_phase": "canary"}).status_code == 403
    assert client.post(f"/alerts/{prodded['incident'].pk}/acknowledge/", {"note": "x"}).status_code == 403
    assert f"/alerts/{prodded['incident'].pk}/acknowledge/" not in client.get("/alerts/").content.decode()
    assert SloIncident.objects.get(pk=prodded["incident"].pk).acknowledged_at is None
    assert not MigrationDecision.objects.filter(plan=prodded["plan"]).exists()
