"""Editing a class in the product's own form (issue 19, item 15): "Edit class" on the class page
leads to it, not to the Django admin; a bad value is refused beside its field, nothing saved; a
good one is saved through the API's service and audited; below admin there is no way in. SLOs
and schedule policies are edited on the same page (a row each, one blank row to add), saved in the
same service call as PATCH makes, errors beside their row."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.dashboards.helpers import HEALTHY_SLUG


@pytest.fixture
def edited_class(demo_fleet):
    from workloads.models import WorkloadClass

    return WorkloadClass.objects.get(slug=HEALTHY_SLUG)


def test_an_admin_edits_a_class_on_its_own_screen_with_errors_beside_the_field(logged_in_page, edited_class):
    from workloads.models import AuditEvent, WorkloadClass

    page = logged_in_page("admin")
    page.goto(f"/classes/{HEALTHY_SLUG}/")
    page.get_by_role("link", name="Edit class").click()
    page.wait_for_url(f"**/classes/{HEALTHY_SLUG}/edit/")
    assert "/admin/" not in page.url
    expect(page.get_by_role("heading", name=f"Edit {edited_class.name}")).to_be_visible()

    scaling = page.get_by_role("group", name="Scaling")  # schedule rows have their own min and max

    # Minimum above the maximum: the model's check, shown beside the minimum; nothing is saved.
    max_instances = edited_class.max_instances
    scaling.get_by_label("Min instances").fill(str(max_instances + 5))
    page.get_by_role("button", name=f"Save {HEALTHY_SLUG}").click()
    field = page.locator(".class-edit-form > .class-edit-section .field.has-error")
    expect(field).to_have_count(1)
    expect(field.locator("label")).to_have_text("Min instances")
    expect(field.locator(".field-error")).to_contain_text("must not exceed the maximum")
    expect(scaling.get_by_label("Min instances")).to_have_value(str(max_instances + 5))  # kept for correction
    screenshot(page, "class-edit-error")
    assert WorkloadClass.objects.get(pk=edited_class.pk).min_instances == edited_class.min_instances
    updates = AuditEvent.objects.filter(action="workload_class.update", workload_class_slug=HEALTHY_SLUG)
    assert not updates.exists()

    # A good value is saved, announced on the class page and audited with who and what.
    scaling.get_by_label("Min instances").fill(str(edited_class.min_instances))
    scaling.get_by_label("Max instances").fill(str(max_instances + 3))
    page.get_by_label("Owner team").fill("search-platform")
    page.get_by_role("button", name=f"Save {HEALTHY_SLUG}").click()
    page.wait_for_url(f"**/classes/{HEALTHY_SLUG}/")
    expect(page.locator(".toast, .messages, [role=status]").first).to_contain_text(f"{HEALTHY_SLUG} saved")
    expect(page.locator(".page-meta").first).to_contain_text("team search-platform")
    saved = WorkloadClass.objects.get(pk=edited_class.pk)
    assert saved.max_instances == max_instances + 3 and saved.owner_team == "search-platform"
    event = updates.get()
    assert event.actor_id == page.user.pk
    assert set(event.changes) == {"max_instances", "owner_team"}, event.changes
    assert page.js_errors == []


def test_an_admin_edits_slos_and_schedules_on_the_same_screen(logged_in_page, edited_class):
    from workloads.models import AuditEvent, SchedulePolicy, Slo

    page = logged_in_page("admin", viewport=(390, 844))  # the phone layout: rows stack, nothing hidden
    page.goto(f"/classes/{HEALTHY_SLUG}/edit/")
    slos_before = list(Slo.objects.filter(workload_class=edited_class).order_by("kind").values())
    schedules_before = list(SchedulePolicy.objects.filter(workload_class=edited_class).order_by("name").values())
    assert any(slo["kind"] == "success_ratio" for slo in slos_before)
    success = page.get_by_role("group", name="SLO success_ratio")
    new_schedule = page.get_by_role("group", name="New schedule")

    # A target of 100 is refused beside that SLO's row, and nothing at all is saved, not even
    # the schedule filled in beside it.
    success.get_by_label("Target percent").fill("100")
    new_schedule.get_by_label("Name").fill("weekend-batch")
    new_schedule.get_by_label("Sat").check()
    new_schedule.get_by_label("Sun").check()
    new_schedule.get_by_label("Start time").fill("08:00")
    new_schedule.get_by_label("End time").fill("20:00")
    new_schedule.get_by_label("Min instances").fill("2")
    new_schedule.get_by_label("Max instances").fill("6")
    page.get_by_role("button", name=f"Save {HEALTHY_SLUG}").click()
    expect(page.locator(".class-edit-row.has-error")).to_have_count(1)
    row_error = page.get_by_role("group", name="SLO success_ratio").locator(".field.has-error")
    expect(row_error.locator("label")).to_have_text("Target percent")
    expect(row_error.locator(".field-error")).to_contain_text("strictly between 0 and 100")
    screenshot(page, "class-edit-slo-error")
    assert list(Slo.objects.filter(workload_class=edited_class).order_by("kind").values()) == slos_before
    assert (
        list(SchedulePolicy.objects.filter(workload_class=edited_class).order_by("name").values()) == schedules_before
    )
    updates = AuditEvent.objects.filter(action="workload_class.update", workload_class_slug=HEALTHY_SLUG)
    assert not updates.exists()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # Corrected: the target changes and the schedule is added, audited and visible to the API.
    page.get_by_role("group", name="SLO success_ratio").get_by_label("Target percent").fill("99.9")
    page.get_by_role("button", name=f"Save {HEALTHY_SLUG}").click()
    page.wait_for_url(f"**/classes/{HEALTHY_SLUG}/")
    expect(page.locator(".toast, .messages, [role=status]").first).to_contain_text("SLOs, schedules")
    api = page.request.get(f"/api/v1/classes/{HEALTHY_SLUG}/")
    assert api.status == 200
    body = api.json()
    targets = {slo["kind"]: slo["target_percent"] for slo in body["slos"]}
    assert float(targets["success_ratio"]) == 99.9, targets
    assert len(targets) == len(slos_before)  # the other SLOs kept
    added = [schedule for schedule in body["schedules"] if schedule["name"] == "weekend-batch"]
    assert added and added[0]["days_of_week"] == [5, 6] and added[0]["max_instances"] == 6, body["schedules"]
    assert len(body["schedules"]) == len(schedules_before) + 1
    event = updates.get()
    assert event.actor_id == page.user.pk and {"slos", "schedules"} <= set(event.changes), event.changes
    assert page.js_errors == []


def test_below_admin_there_is_no_edit_screen(logged_in_page, edited_class):
    page = logged_in_page("operator")
    page.goto(f"/classes/{HEALTHY_SLUG}/")
    expect(page.get_by_role("link", name="Edit class")).to_have_count(0)
    response = page.goto(f"/classes/{HEALTHY_SLUG}/edit/")
    assert response.status == 403
    expect(page.get_by_text("This page needs the admin role")).to_be_visible()
