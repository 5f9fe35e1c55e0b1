"""Pool statuses in Chromium (issue 19 item 4, issue 18's worker health): an operator holds a pool
at a count from the class page; the overview then shows that class as Held with the time left,
above the classes that are OK, and the pool panel says what holds it instead of the controller's
target; a crash-looping pool shows as Unhealthy with its evidence. Screenshots in var/screenshots/."""

from datetime import timedelta

from playwright.sync_api import expect

from tests.browser.conftest import screenshot

DEFERRABLE_SLUG = "batch-enrichment"
DOCS_SLUG = "document-processing"


def test_held_and_unhealthy_pools_have_their_own_status(logged_in_page, demo_fleet):
    from django.test import override_settings
    from django.utils import timezone

    from tests.workloads.pools import fresh_backlog, run_pending
    from workloads.domain.health import NO_HANDLER_EXIT_CODE
    from workloads.models import WorkloadClass
    from workloads.providers import get_providers
    from workloads.providers.local.models import LocalWorkerPool
    from workloads.providers.specs import pool_spec
    from workloads.services.scaling import scaling_controller_tick

    for wc in WorkloadClass.objects.all():
        get_providers().pools.ensure(pool_spec(wc), initial_instances=2)
        fresh_backlog(wc, backlog=0, queue_age=1, now=timezone.now())  # fresh data: OK

    page = logged_in_page("operator")
    page.goto(f"/classes/{DEFERRABLE_SLUG}/")
    form = page.locator("form", has=page.get_by_role("heading", name="Hold at a count"))
    form.get_by_label("Instances").fill("4")
    form.get_by_label("Reason").fill("warm-up before the batch")
    page.once("dialog", lambda dialog: dialog.accept())
    form.get_by_role("button", name="Hold").click()
    expect(page.locator(".toast").first).to_contain_text("Holding batch-enrichment at 4 instances.")
    run_pending()
    page.reload()
    expect(page.get_by_test_id("controller-held")).to_contain_text("Held at 4 by the override")
    assert get_providers().pools.get(pool_spec(WorkloadClass.objects.get(slug=DEFERRABLE_SLUG))).instance_count == 4

    docs = WorkloadClass.objects.get(slug=DOCS_SLUG)
    with override_settings(
        WORKER_REPORT_INTERVAL_SECONDS=10, TELEMETRY_POLL_INTERVAL_SECONDS=10, TELEMETRY_POLL_CURRENT_MINUTE=True
    ):
        t0 = timezone.now()
        fresh_backlog(docs, backlog=300, queue_age=40, now=t0)
        scaling_controller_tick(now=t0)
        run_pending()
        t1 = t0 + timedelta(seconds=25)
        LocalWorkerPool.objects.filter(name=docs.worker_pool).update(
            exits_in_row=3, last_exit_at=t1, last_exit_code=NO_HANDLER_EXIT_CODE
        )
        fresh_backlog(docs, backlog=300, queue_age=65, now=t1)
        scaling_controller_tick(now=t1)

    page.goto("/?sort=status")
    rows = page.locator("#fleet-rows tr")
    expect(rows.first).to_contain_text("Unhealthy")
    expect(rows.first).to_contain_text("no handler registered")
    held = page.locator("#fleet-rows tr", has_text=DEFERRABLE_SLUG)
    expect(held.locator(".status")).to_have_text("■Held")
    expect(held).to_contain_text("left: warm-up before the batch")
    statuses = ["".join(s.split()) for s in page.locator("#fleet-rows .status").all_inner_texts()]
    assert statuses.index("■Held") < statuses.index("●OK"), statuses
    screenshot(page, "fleet-overview-held-and-unhealthy")
