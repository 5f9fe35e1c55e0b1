"""The on-call flows end to end in Chromium against the live server and the embedded local provider:
dead letters mirrored from a class's dead-letter topic are selected by signature and replayed while
the page watches the progress bar; incident mode pauses the deferrable pool (banner, 0 instances)
and exit restores it; a viewer sees no action button anywhere. The actions run in this thread with
the engine the Celery worker uses (`action_run`), while the browser keeps polling the live server.
Screenshots land in var/screenshots/."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, screenshot
from tests.dashboards.helpers import HEALTHY_SLUG

DEFERRABLE_SLUG = "batch-enrichment"


def _no_action_buttons(page) -> list[str]:
    """Buttons and POST forms in the page's main area, other than GET filters, toast close and the
    charts' Reset zoom (it only changes the view)."""
    return page.evaluate(
        """() => [
        ...[...document.querySelectorAll('main button')]
            .filter(b => !b.classList.contains('toast-close') && !b.classList.contains('chart-zoom-reset')
                && !(b.form && b.form.method === 'get'))
            .map(b => 'button: ' + b.textContent.trim()),
        ...[...document.querySelectorAll('main form')]
            .filter(f => f.method === 'post')
            .map(f => 'form: ' + f.getAttribute('action')),
        ...[...document.querySelectorAll('main input[name=ids], main [data-select-all-matching]')]
            .map(i => 'selection box'),
    ]"""
    )


@pytest.fixture
def dead_letters(demo_fleet):
    """Six dead letters of the healthy demo class on its local dead-letter topic, mirrored by the
    real sync: four timeouts and two schema errors."""
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
        kit_dead_letter(
            queue, wc, event(n), error_type="Timeout", message="backend timed out after 30 s", signature="sig-timeout"
        )
    for n in range(2):
        kit_dead_letter(
            queue, wc, event(10 + n), error_type="SchemaError", message="revision must be >= 1", signature="sig-schema"
        )
    assert dead_letters_sync(now=timezone.now(), workload_classes=[wc]) == {HEALTHY_SLUG: 6}
    return wc


def test_an_operator_replays_the_dead_letters_of_one_signature_and_watches_it_finish(
    new_page, make_browser_user, dead_letters
):
    from tests.workloads.deadletter_helpers import waiting
    from workloads.models import Action, DeadLetter
    from workloads.providers import get_providers
    from workloads.services.actions import action_run

    wc = dead_letters
    user = make_browser_user("olivia", "operator")
    page = new_page()
    page.goto("/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    # Overview -> class -> its dead letters.
    page.get_by_role("link", name=wc.name).click()
    expect(page.locator(".dl-summary")).to_contain_text("6 dead letters need attention")
    page.get_by_role("link", name=f"Triage the dead letters of {wc.slug}").click()
    groups = page.locator("#dead-letter-groups tbody tr")
    expect(groups).to_have_count(2)
    expect(groups.filter(has_text="Timeout")).to_contain_text("4")
    expect(page.locator("#dead-letter-groups svg.sparkline")).to_have_count(2)
    screenshot(page, "dead-letter-groups")

    page.get_by_role("link", name="Timeout").click()
    rows = page.locator("#dead-letter-messages tbody tr")
    expect(rows).to_have_count(4)
    rows.first.locator("summary").click()
    expect(rows.first.locator("pre")).to_contain_text('"tenant_id": "acme"')
    expect(rows.first.locator(".attributes")).to_contain_text("cp-error-signature")
    page.get_by_label("Select every dead letter on this page").check()
    expect(page.locator("[data-selection-count]")).to_have_text("4 selected")
    screenshot(page, "dead-letter-messages-selected")

    page.get_by_role("button", name="Replay selected…").click()
    panel = page.locator("#triage-panel")
    expect(panel.get_by_role("heading", name="Replay 4 dead letters?")).to_be_visible()
    expect(panel.get_by_test_id("replay-statement")).to_contain_text(f"4 will be published again to topic {wc.topic}")
    panel.get_by_role("button", name="Dry run").click()
    expect(panel.locator(".dry-run tbody tr")).to_have_count(4)
    expect(panel.locator(".dry-run")).to_contain_text("cp-replay-count=1")
    # A dry run never looks like a real replay: each row "would publish" (no green "published"),
    # under one line that sums it up.
    expect(panel.get_by_test_id("dry-run-summary")).to_have_text("Would publish 4 of the 4 selected.")
    expect(panel.locator(".dry-run tbody .pill")).to_have_text(["would publish"] * 4)
    expect(panel.locator(".dry-run .state-succeeded")).to_have_count(0)
    screenshot(page, "dead-letter-replay-confirm")
    panel.get_by_label("Velocity (messages/s)").fill("5")
    panel.get_by_role("button", name="Replay 4 dead letters").click()
    progress = panel.locator("#action-progress")
    expect(progress).to_contain_text("pending")
    assert DeadLetter.objects.filter(workload_class=wc, status="new").count() == 6  # nothing moved yet

    replay = Action.objects.get(kind="replay")
    assert replay.parameters["velocity"] == 5.0
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "/progress/" in r.url else None)
    finished = action_run(action_id=replay.pk, sleep=time.sleep)  # the worker's engine, 0.2 s per message
    assert finished.state == "succeeded"
    # Published, and then followed: a replay is not a green "succeeded" before its messages are done.
    expect(progress).to_contain_text("all published", timeout=6_000)
    expect(progress.get_by_test_id("replay-outcome")).to_have_text("4 published, 4 pending")
    expect(progress.locator("progress")).to_have_attribute("value", "100")
    expect(progress).to_contain_text("4 done of 4")
    assert polls, "the progress bar polled the server"
    screenshot(page, "dead-letter-replay-done")

    replayed = DeadLetter.objects.filter(workload_class=wc, error_signature="sig-timeout")
    assert set(replayed.values_list("status", flat=True)) == {"replayed"}
    assert DeadLetter.objects.filter(workload_class=wc, error_signature="sig-schema", status="new").count() == 2
    republished = waiting(get_providers().queue, wc)
    assert len(republished) == 4
    assert {m.attributes["cp-replay-count"] for m in republished} == {"1"}

    page.goto(f"/dead-letters/messages/?workload_class={wc.slug}&signature=sig-timeout&status=all")
    # One status per row (the payload's sticky header repeats it inside the row's hidden details).
    expect(page.locator("#dead-letter-messages td[data-label=Status] .dl-status-replayed")).to_have_count(4)
    assert page.js_errors == []


def test_edit_and_replay_shows_schema_errors_inline_and_keeps_the_original(logged_in_page, dead_letters):
    from workloads.models import DeadLetter

    row = DeadLetter.objects.filter(error_signature="sig-schema").first()
    page = logged_in_page("operator")
    page.goto(f"/dead-letters/{row.pk}/")
    editor = page.get_by_label("Corrected payload (JSON)")
    editor.fill('{"tenant_id": "acme", "document_id": "doc-10", "revision": 0}')
    page.get_by_role("button", name="Validate, save and replay").click()
    errors = page.locator("#payload-errors")
    expect(errors).to_contain_text("payload.revision")
    expect(editor).to_have_attribute("aria-invalid", "true")
    screenshot(page, "dead-letter-edit-errors")
    row.refresh_from_db()
    assert row.edited_payload is None  # nothing saved, nothing published
    page.get_by_label("Corrected payload (JSON)").fill("{not json")
    page.get_by_role("button", name="Validate, save and replay").click()
    expect(page.locator("#payload-errors")).to_contain_text("This is not JSON")
    assert page.js_errors == []


def test_incident_mode_pauses_the_deferrable_pool_and_exit_restores_it(logged_in_page, demo_fleet):
    from django.utils import timezone

    from workloads.models import IncidentMode, WorkloadClass
    from workloads.providers import get_providers
    from workloads.providers.specs import pool_spec
    from workloads.services.actions import action_run
    from workloads.services.scaling import scaling_controller_tick

    pools = get_providers().pools
    for wc in WorkloadClass.objects.all():
        pools.ensure(pool_spec(wc), initial_instances=3 if wc.slug == DEFERRABLE_SLUG else 2)
    scaling_controller_tick(now=timezone.now())  # adopts each pool's count as its target
    deferrable = WorkloadClass.objects.get(slug=DEFERRABLE_SLUG)

    page = logged_in_page("operator")
    page.goto("/incidents/")
    expect(page.locator("#incident-state")).to_contain_text("Incident mode is not active")
    expect(page.locator(".incident-banner")).to_have_count(0)
    page.get_by_label("Reason (required)").fill("primary database failover")
    page.get_by_label("Ticket").fill("INC-7")
    page.get_by_label("Ends by itself after").select_option("240")
    page.get_by_role("button", name="Review the pools it pauses…").click()
    preview = page.locator("#enter-panel")
    expect(preview.get_by_test_id("enter-statement")).to_contain_text("pauses 1 deferrable pool (3 instances")
    expect(preview.locator(f'tr[data-class="{DEFERRABLE_SLUG}"]')).to_contain_text("3 → 0")
    screenshot(page, "incident-enter-preview")
    preview.get_by_role("button", name="Enter incident mode: pause 1 pool").click()

    banner = page.locator(".incident-banner")
    expect(banner).to_contain_text("primary database failover")
    expect(banner).to_contain_text("INC-7")
    hold_row = page.locator(f'#incident-state tr[data-class="{DEFERRABLE_SLUG}"]')
    expect(hold_row).to_contain_text("pausing")
    incident = IncidentMode.objects.get()
    assert action_run(action_id=incident.enter_action_id).state == "succeeded"
    # The state polls every 2 s while the enter action runs: the pool shows 3 -> 0.
    expect(hold_row.locator('[data-col="now"]')).to_contain_text("0", timeout=6_000)
    expect(hold_row.locator('[data-col="had"]')).to_have_text("3")
    expect(hold_row).to_contain_text("paused")
    assert pools.get(pool_spec(deferrable)).instance_count == 0
    screenshot(page, "incident-active")

    page.goto("/")
    fleet_row = page.locator("#fleet-rows tr").filter(has=page.locator(".slug", has_text=DEFERRABLE_SLUG))
    expect(fleet_row.locator('[data-col="instances"]')).to_contain_text("paused")
    expect(fleet_row.locator('[data-col="instances"] .of')).to_contain_text("/ 0")
    expect(page.locator(".incident-banner")).to_be_visible()
    screenshot(page, "fleet-overview-incident")

    page.goto("/incidents/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Exit incident mode").click()
    expect(page.locator("#incident-state")).to_contain_text("Restoring the pools")
    expect(page.locator(".incident-banner")).to_have_count(0)
    incident.refresh_from_db()
    assert action_run(action_id=incident.exit_action_id).state == "succeeded"
    expect(page.locator("#incident-state")).to_contain_text("Incident mode is not active", timeout=6_000)
    restored = page.locator(f'#incident-state tr[data-class="{DEFERRABLE_SLUG}"]')
    expect(restored.locator('[data-col="restored"]')).to_contain_text("3 · the count it had")
    expect(restored.locator('[data-col="now"]')).to_contain_text("3")
    assert pools.get(pool_spec(deferrable)).instance_count == 3
    page.reload()
    expect(page.locator("#incident-history")).to_contain_text(f"{DEFERRABLE_SLUG}: 3 → 0 → restored to 3")
    screenshot(page, "incidents-after-exit")
    assert page.js_errors == []


def test_a_viewer_sees_no_action_buttons_on_any_screen(logged_in_page, dead_letters, operator_user):
    from django.utils import timezone

    from workloads.models import DeadLetter, WorkloadClass
    from workloads.providers import get_providers
    from workloads.providers.specs import pool_spec
    from workloads.services.incidents import incident_mode_enter
    from workloads.services.scaling import scaling_controller_tick
    from workloads.services.triage import triage_rule_create

    for wc in WorkloadClass.objects.all():
        get_providers().pools.ensure(pool_spec(wc), initial_instances=2)
    scaling_controller_tick(now=timezone.now())
    triage_rule_create(
        actor=operator_user, fields={"name": "retry timeouts", "error_signature": "sig-timeout", "action": "hold"}
    )
    incident_mode_enter(actor=operator_user, reason="viewer check")
    row = DeadLetter.objects.first()
    screens = {
        "dead-letters-viewer": "/dead-letters/",
        "dead-letter-messages-viewer": f"/dead-letters/messages/?workload_class={HEALTHY_SLUG}&status=all",
        "dead-letter-detail-viewer": f"/dead-letters/{row.pk}/",
        "triage-rules-viewer": "/dead-letters/rules/",
        "incidents-viewer": "/incidents/",
        "class-detail-pool-viewer": f"/classes/{DEFERRABLE_SLUG}/",
        "compare-viewer": f"/compare/?a_class={HEALTHY_SLUG}&a_start=2026-01-01&a_end=2026-01-07"
        "&b_start=2026-01-08&b_end=2026-01-14",
        "schedules-viewer": f"/schedules/?workload_class={HEALTHY_SLUG}",
    }
    viewer = logged_in_page("viewer")
    for name, url in screens.items():
        viewer.goto(url)
        expect(viewer.locator("main h1")).to_be_visible()
        assert _no_action_buttons(viewer) == [], (url, _no_action_buttons(viewer))
        screenshot(viewer, name)
    assert viewer.js_errors == []

    # The same screens at phone size and in the dark theme, for the operator who has the buttons.
    phone = logged_in_page("operator", viewport=(390, 844), color_scheme="dark")
    for name, url in screens.items():
        phone.goto(url)
        # The page never scrolls sideways: wide tables scroll in their own region.
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), url
        screenshot(phone, name.replace("-viewer", "-phone-dark"))
    assert phone.js_errors == []


@pytest.fixture
def operator_user(make_browser_user):
    return make_browser_user("oscar", "operator")


def test_the_schedule_screen_shows_the_controller_preview(logged_in_page, demo_fleet):
    page = logged_in_page("viewer")
    page.goto(f"/schedules/?workload_class={HEALTHY_SLUG}")
    preview = page.locator("#target-preview")
    expect(preview.locator("svg.preview-bars rect")).to_have_count(168)
    expect(preview.locator(".preview-changes tbody tr").first).to_contain_text(re.compile(r"nightly|baseline|weekend"))
    screenshot(page, "schedules-preview")
