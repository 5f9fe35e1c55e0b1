"""Issue 19, "Misleading": what the on-call engineer reads must be true, checked in Chromium against
the live server and the embedded local provider. A replay whose messages fail again says so on the
panel, the action and the class's recent actions; the message list refreshes and drops the
selection when a replay is requested and when it ends."""

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.dashboards.helpers import HEALTHY_SLUG


@pytest.fixture
def timeouts(demo_fleet):
    """Four dead letters of the healthy demo class, mirrored by the real sync from its local
    dead-letter topic."""
    from django.utils import timezone

    from tests.workloads.deadletter_helpers import event, kit_dead_letter
    from workloads.models import WorkloadClass
    from workloads.providers import get_providers
    from workloads.providers.specs import queue_spec
    from workloads.services.deadletter_mirror import dead_letters_sync

    wc = WorkloadClass.objects.get(slug=HEALTHY_SLUG)
    queue = get_providers().queue
    queue.ensure_resources(queue_spec(wc))
    for n in range(4):
        kit_dead_letter(queue, wc, event(n), error_type="Timeout", message="backend timed out", signature="sig-timeout")
    assert dead_letters_sync(now=timezone.now(), workload_classes=[wc]) == {HEALTHY_SLUG: 4}
    return wc


def _fail_again(wc) -> None:
    """Every replayed message is taken by a worker and dead-lettered again: its copy carries
    cp-replay-of, and the sync mirrors it onto the same row."""
    from django.utils import timezone

    from tests.workloads.deadletter_helpers import kit_dead_letter, waiting
    from workloads.providers import get_providers
    from workloads.providers.base import ATTR_REPLAY_OF
    from workloads.services.deadletter_mirror import dead_letters_sync

    queue = get_providers().queue
    for message in waiting(queue, wc):
        kit_dead_letter(
            queue,
            wc,
            json.loads(message.data),
            error_type="Timeout",
            message="backend timed out",
            signature="sig-timeout",
            extra={ATTR_REPLAY_OF: message.attributes[ATTR_REPLAY_OF]},
        )
    time.sleep(0.01)
    dead_letters_sync(now=timezone.now(), workload_classes=[wc])


def test_a_replay_whose_messages_fail_again_says_so_and_the_list_drops_its_selection(logged_in_page, timeouts):
    from workloads.models import Action, DeadLetter
    from workloads.services.actions import action_run

    wc = timeouts
    page = logged_in_page("operator")
    page.clock.install()  # real time flows; the 10 s watch below is fast-forwarded, not waited out
    page.goto(f"/dead-letters/messages/?workload_class={wc.slug}&signature=sig-timeout")
    rows = page.locator("#dead-letter-messages tbody tr")
    expect(rows).to_have_count(4)
    page.get_by_label("Select every dead letter on this page").check()
    expect(page.locator("[data-selection-count]")).to_have_text("4 selected")
    page.get_by_role("button", name="Replay selected…").click()
    panel = page.locator("#triage-panel")
    panel.get_by_role("button", name="Replay 4 dead letters").click()
    expect(panel.locator("#action-progress")).to_contain_text("pending")

    # Requested: the list was refreshed and nothing is ticked any more, so the button is not armed.
    expect(page.locator("#dead-letter-messages input[name=ids]:checked")).to_have_count(0)
    expect(page.locator("[data-select-all-matching]")).not_to_be_checked()
    expect(page.locator("[data-selection-count]")).to_have_text("")

    replay = Action.objects.get(kind="replay")
    assert action_run(action_id=replay.pk, sleep=lambda s: None).state == "succeeded"
    progress = panel.locator("#action-progress")
    # Ended: the panel says what was published, not a green "succeeded", and the list shows
    # the rows' new status (replayed rows leave the "new" filter).
    expect(progress.get_by_test_id("replay-outcome")).to_have_text("4 published, 4 pending", timeout=6_000)
    expect(progress.locator(".action-state")).to_contain_text("all published")
    expect(page.locator("#dead-letter-messages")).to_contain_text("No dead letters match this filter")

    _fail_again(wc)
    assert DeadLetter.objects.filter(workload_class=wc, status="new").count() == 4
    # The panel keeps watching the published messages (every 10 s) and turns red when they come back.
    with page.expect_response(lambda r: "/progress/" in r.url and r.request.headers.get("hx-request") == "true"):
        page.clock.fast_forward(10_000)
    outcome = progress.get_by_test_id("replay-outcome")
    expect(outcome).to_have_text("⚠ 4 published, 4 dead-lettered again")
    expect(outcome).to_have_class("sub replay-outcome replay-outcome-bad")
    screenshot(page, "replay-dead-lettered-again")

    # The action page and the class's recent actions say the same.
    page.goto(f"/actions/{replay.pk}/")
    expect(page.get_by_test_id("replay-outcome")).to_contain_text("4 published, 4 dead-lettered again")
    page.goto(f"/classes/{wc.slug}/")
    recent = page.locator("#recent-title + .table-wrap")
    expect(recent.get_by_test_id("replay-outcome")).to_contain_text("4 dead-lettered again")
    expect(recent.locator(".state-succeeded")).to_have_count(0)
    page.goto("/actions/")
    expect(page.get_by_test_id("replay-outcome")).to_contain_text("4 dead-lettered again")
    assert page.js_errors == []


def test_pause_asks_first_with_the_tier_the_backlog_and_the_retention_risk(logged_in_page, demo_fleet):
    from django.utils import timezone

    from workloads.models import ClassTelemetry, PoolHold, WorkloadClass
    from workloads.providers import get_providers
    from workloads.providers.specs import pool_spec
    from workloads.services.scaling import scaling_controller_tick

    wc = WorkloadClass.objects.get(slug="batch-enrichment")
    WorkloadClass.objects.filter(pk=wc.pk).update(message_retention_seconds=3 * 3600)
    get_providers().pools.ensure(pool_spec(wc), initial_instances=2)
    scaling_controller_tick(now=timezone.now())
    ClassTelemetry.objects.update_or_create(
        workload_class=wc, defaults={"fetched_at": timezone.now(), "backlog": 5000.0, "oldest_unacked_age_seconds": 600}
    )
    page = logged_in_page("operator")
    page.goto(f"/classes/{wc.slug}/")
    pool = page.locator("#pool-panel")
    pool.locator("#pause_reason").fill("vendor outage")
    pool.locator("#pause_expires_in_minutes").select_option("240")
    pool.get_by_role("button", name="Pause…").click()

    statement = pool.get_by_test_id("pause-statement")
    expect(statement).to_contain_text("Deferrable (paused in incident mode) tier")
    expect(statement).to_contain_text("5000 messages waiting, the oldest for 10 min")
    expect(pool.get_by_test_id("pause-retention-risk")).to_contain_text("the pause may last 4 h")
    assert not PoolHold.objects.exists()  # the first click only asked
    screenshot(page, "pause-confirmation")
    pool.get_by_role("link", name="Cancel").click()
    expect(pool.get_by_role("button", name="Pause…")).to_be_visible()
    assert not PoolHold.objects.exists()

    pool.locator("#pause_reason").fill("vendor outage")
    pool.get_by_role("button", name="Pause…").click()
    pool.get_by_role("button", name=f"Pause {wc.slug}: 0 instances").click()
    expect(pool.get_by_test_id("pool-state")).to_contain_text("paused")
    assert PoolHold.objects.filter(workload_class=wc, reason="vendor outage").exists()
    assert page.js_errors == []


def test_after_leaving_incident_mode_the_history_and_the_toast_follow_the_restore(logged_in_page, demo_fleet):
    from django.utils import timezone

    from workloads.models import IncidentMode, WorkloadClass
    from workloads.providers import get_providers
    from workloads.providers.specs import pool_spec
    from workloads.services.actions import action_run
    from workloads.services.incidents import incident_mode_enter
    from workloads.services.scaling import scaling_controller_tick

    pools = get_providers().pools
    for wc in WorkloadClass.objects.all():
        pools.ensure(pool_spec(wc), initial_instances=3 if wc.slug == "batch-enrichment" else 1)
    scaling_controller_tick(now=timezone.now())
    incident_mode_enter(actor=None, reason="database failover", expires_in=timezone.timedelta(hours=1))
    assert action_run(action_id=IncidentMode.objects.get().enter_action_id).state == "succeeded"

    page = logged_in_page("operator")
    page.goto("/incidents/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Exit incident mode").click()
    expect(page.locator("#incident-state")).to_contain_text("Restoring the pools")
    toasts = page.locator("#toasts")
    expect(toasts).to_contain_text("the paused pools are being restored")
    history = page.locator("#incident-history")
    expect(history).to_contain_text("restoring")

    incident = IncidentMode.objects.get()
    assert action_run(action_id=incident.exit_action_id).state == "succeeded"
    # Same page, no reload: the last poll of the state brings the history and the toast up to date.
    expect(page.locator("#incident-state")).to_contain_text("Incident mode is not active", timeout=6_000)
    expect(history).to_contain_text("batch-enrichment: 3 → 0 → restored to 3")
    expect(history).not_to_contain_text("restoring")
    expect(toasts).to_contain_text(f"Incident #{incident.pk} ended: 1 pool restored.")
    expect(toasts).not_to_contain_text("being restored")
    screenshot(page, "incident-exit-settled")
    assert page.js_errors == []


def test_the_overview_counts_dead_letters_to_triage_and_the_nav_shows_the_total(logged_in_page, timeouts):
    from workloads.models import ClassTelemetry, WorkloadClass

    # The sync drained the dead-letter subscription: its backlog metric reads 0.
    ClassTelemetry.objects.update_or_create(
        workload_class=timeouts, defaults={"fetched_at": timeouts.created_at, "dead_letter_backlog": 0}
    )
    other = WorkloadClass.objects.exclude(pk=timeouts.pk).first()
    page = logged_in_page("viewer")
    page.goto("/")
    row = page.locator("#fleet-rows tr").filter(has=page.locator(".slug", has_text=timeouts.slug))
    cell = row.locator('[data-col="dead_letters"]')
    expect(cell.get_by_role("link", name="4")).to_have_attribute(
        "href", f"/dead-letters/?workload_class={timeouts.slug}"
    )
    expect(cell.locator("svg.sparkline")).to_have_attribute("aria-label", re.compile("4 dead letters arrived"))
    other_row = page.locator("#fleet-rows tr").filter(has=page.locator(".slug", has_text=other.slug))
    expect(other_row.locator('[data-col="dead_letters"]')).to_contain_text("0")
    nav_count = page.get_by_role("navigation", name="Main").get_by_test_id("nav-count")
    expect(nav_count).to_have_attribute("title", "4 dead letters need attention")
    # Read aloud: "Dead letters: 4 dead letters need attention" (the badge itself is hidden from readers).
    link_name = re.compile(r"^Dead letters\s*: 4 dead letters need attention$")
    expect(page.get_by_role("link", name=link_name)).to_be_visible()
    screenshot(page, "overview-dead-letters-to-triage")
    assert page.js_errors == []
