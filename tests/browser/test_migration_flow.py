"""A migration plan walked in Chromium from baseline to cut-over and rolled back: an admin creates
it on /migrations/, an operator moves it on with the plan page's buttons (each step an action that
the Celery worker's engine runs here), sees the evidence and the gate, overrides the gate that has
too little evidence for cut-over, then rolls back. Screenshots land in var/screenshots/."""

from datetime import timedelta

from playwright.sync_api import expect

from tests.browser.conftest import screenshot


def _run_steps():
    from workloads.models import Action, ActionKind, ActionState
    from workloads.services.actions import action_run

    for action in Action.objects.filter(kind=ActionKind.MIGRATION_STEP, state=ActionState.PENDING):
        assert action_run(action_id=action.pk).state == "succeeded"


def _route() -> int:
    from workloads.models import WorkloadClass

    return WorkloadClass.objects.get(slug="docs-legacy").route_percent


def test_a_plan_goes_from_baseline_to_cut_over_and_back(transactional_db, logged_in_page, live_server):
    from django.utils import timezone

    from tests.workloads.migration_helpers import feed, migration_pair
    from workloads.models import MigrationPlan

    old, new = migration_pair()
    admin = logged_in_page("admin")
    admin.goto(f"{live_server.url}/migrations/")
    admin.select_option("#id_source", "docs-legacy")
    admin.select_option("#id_target", "docs-pool")
    admin.fill("#id_name", "Move docs to the pool")
    admin.get_by_role("button", name="Create plan").click()
    expect(admin.locator("#plan-phase")).to_have_attribute("data-phase", "baseline")
    plan = MigrationPlan.objects.get()

    page = logged_in_page("operator")
    page.goto(f"{live_server.url}/migrations/{plan.pk}/")
    page.locator('button[data-to="canary"]').click()
    expect(page).to_have_url(f"{live_server.url}/actions/{plan.decisions.get().action_id}/")
    _run_steps()
    assert _route() == 20

    # A canary hour in which the pool does better: the gate passes and the ramp is one click.
    start = timezone.now() - timedelta(minutes=60)
    MigrationPlan.objects.filter(pk=plan.pk).update(phase_started_at=start)
    feed(old, start=start, minutes=50, completed=40, failed=2, latency=3.0, instance_seconds=120)
    feed(new, start=start, minutes=50, completed=10, failed=0, latency=1.0, instance_seconds=20)
    page.goto(f"{live_server.url}/migrations/{plan.pk}/")
    expect(page.locator("#gate-verdict")).to_have_attribute("data-verdict", "pass")
    expect(page.locator('[data-row="failure-rate"]')).to_contain_text("n = 2100 outcomes")
    screenshot(page, "migration-canary-evidence")
    page.locator('button[data-to="ramp"]').click()
    _run_steps()
    assert _route() == 50

    # The ramp has just begun: too little evidence, so cut-over is refused until overridden.
    page.goto(f"{live_server.url}/migrations/{plan.pk}/")
    expect(page.locator("#route-percent")).to_have_text("50 %")
    page.locator('button[data-to="cut_over"]').click()
    expect(page.get_by_text("The gate says insufficient")).to_be_visible()
    assert _route() == 50
    form = page.locator("form", has=page.locator('button[data-to="cut_over"]'))
    form.locator('input[name="reason"]').fill("traffic is low, the pool is fine")
    form.locator('input[name="override"]').check()
    form.locator('button[data-to="cut_over"]').click()
    _run_steps()
    assert _route() == 100
    page.goto(f"{live_server.url}/migrations/{plan.pk}/")
    expect(page.locator("#plan-phase")).to_have_attribute("data-phase", "cut_over")
    expect(page.locator('[data-decision="cut_over"]')).to_contain_text("overridden")

    page.locator('button[data-to="rolled_back"]').click()
    _run_steps()
    assert _route() == 0
    page.goto(f"{live_server.url}/migrations/{plan.pk}/")
    expect(page.locator("#plan-phase")).to_have_attribute("data-phase", "rolled_back")
    expect(page.locator('button[data-to="canary"]')).to_have_count(0)
    screenshot(page, "migration-rolled-back")
