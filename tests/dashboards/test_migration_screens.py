"""The migration screens: where to start, a plan's evidence side by side, its buttons (the same
services as the API), roles."""

from datetime import timedelta

from django.utils import timezone

from tests.workloads.migration_helpers import feed, migration_pair
from tests.workloads.pools import run_pending
from workloads.models import ActionKind, MigrationPlan, WorkloadClass
from workloads.services.migration import migration_plan_create


def _plan(admin_user):
    old, new = migration_pair()
    return migration_plan_create(actor=admin_user, name="Move docs", source=old, target=new)


def test_the_list_names_the_best_first_candidate_and_the_plans(ui_client, viewer, admin_user):
    plan = _plan(admin_user)
    start = timezone.now() - timedelta(hours=2)
    feed(plan.source, start=start, minutes=10, completed=20, failed=5, latency=3.0, instance_seconds=60)
    html = ui_client(viewer).get("/migrations/").content.decode()
    assert f'data-plan="{plan.pk}"' in html
    assert "Move docs" in html
    assert 'data-class="docs-legacy"' in html
    assert "New plan" not in html  # viewers do not create plans


def test_an_admin_creates_a_plan_from_the_form(ui_client, admin_user):
    migration_pair()
    client = ui_client(admin_user)
    assert "New plan" in client.get("/migrations/").content.decode()
    response = client.post("/migrations/new/", {"source": "docs-legacy", "target": "docs-pool", "canary_percent": 20,
                                                "ramp_percent": 50})  # fmt: skip
    plan = MigrationPlan.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/migrations/{plan.pk}/"


def test_the_plan_page_shows_both_sides_with_intervals_and_moves_on(ui_client, operator, admin_user):
    plan = _plan(admin_user)
    client = ui_client(operator)
    response = client.post(f"/migrations/{plan.pk}/advance/", {"to_phase": "canary", "reason": "go"})
    assert response.status_code == 302 and "/actions/" in response["Location"]
    run_pending(kind=ActionKind.MIGRATION_STEP)
    start = timezone.now() - timedelta(minutes=60)
    MigrationPlan.objects.filter(pk=plan.pk).update(phase_started_at=start)
    feed(plan.source, start=start, minutes=50, completed=40, failed=2, latency=3.0, instance_seconds=120)
    feed(plan.target, start=start, minutes=50, completed=10, failed=0, latency=1.0, instance_seconds=20)
    html = client.get(f"/migrations/{plan.pk}/").content.decode()
    assert 'data-phase="canary"' in html and "20 %" in html
    assert 'data-verdict="pass"' in html
    assert "95 %:" in html and "n = 2100 outcomes" in html and "n = 500 completions" in html
    assert 'data-to="ramp"' in html and 'data-to="rolled_back"' in html
    client.post(f"/migrations/{plan.pk}/rollback/", {"reason": "enough"})
    run_pending(kind=ActionKind.MIGRATION_STEP)
    assert WorkloadClass.objects.get(slug="docs-legacy").route_percent == 0


def test_viewers_see_no_buttons_and_cannot_post(ui_client, viewer, admin_user):
    plan = _plan(admin_user)
    client = ui_client(viewer)
    assert 'data-to="canary"' not in client.get(f"/migrations/{plan.pk}/").content.decode()
    assert client.post(f"/migrations/{plan.pk}/advance/", {"to_phase": "canary"}).status_code == 403
    assert client.post("/migrations/new/", {"source": "docs-legacy", "target": "docs-pool"}).status_code == 403
    assert client.get("/migrations/999/").status_code == 404


def test_a_refused_gate_is_shown_as_a_message(ui_client, operator, admin_user):
    plan = _plan(admin_user)
    client = ui_client(operator)
    client.post(f"/migrations/{plan.pk}/advance/", {"to_phase": "canary"})
    run_pending(kind=ActionKind.MIGRATION_STEP)
    response = client.post(f"/migrations/{plan.pk}/advance/", {"to_phase": "ramp"}, follow=True)
    assert "The gate says insufficient" in response.content.decode()
    assert WorkloadClass.objects.get(slug="docs-legacy").route_percent == 20
