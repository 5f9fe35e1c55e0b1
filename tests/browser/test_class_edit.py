"""Editing a class in the product's own form (issue 19, item 15): "Edit class" on the class page
leads to it, not to the Django admin; a bad value is refused beside its field, nothing saved; a
good one is saved through the API's service and audited; below admin there is no way in."""

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

    # Minimum above the maximum: the model's check, shown beside the minimum; nothing is saved.
    max_instances = edited_class.max_instances
    page.get_by_label("Min instances").fill(str(max_instances + 5))
    page.get_by_role("button", name=f"Save {HEALTHY_SLUG}").click()
    field = page.locator(".field.has-error")
    expect(field).to_have_count(1)
    expect(field.locator("label")).to_have_text("Min instances")
    expect(field.locator(".field-error")).to_contain_text("must not exceed the maximum")
    expect(page.get_by_label("Min instances")).to_have_value(str(max_instances + 5))  # kept for correction
    screenshot(page, "class-edit-error")
    assert WorkloadClass.objects.get(pk=edited_class.pk).min_instances == edited_class.min_instances
    updates = AuditEvent.objects.filter(action="workload_class.update", workload_class_slug=HEALTHY_SLUG)
    assert not updates.exists()

    # A good value is saved, announced on the class page and audited with who and what.
    page.get_by_label("Min instances").fill(str(edited_class.min_instances))
    page.get_by_label("Max instances").fill(str(max_instances + 3))
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


def test_below_admin_there_is_no_edit_screen(logged_in_page, edited_class):
    page = logged_in_page("operator")
    page.goto(f"/classes/{HEALTHY_SLUG}/")
    expect(page.get_by_role("link", name="Edit class")).to_have_count(0)
    response = page.goto(f"/classes/{HEALTHY_SLUG}/edit/")
    assert response.status == 403
    expect(page.get_by_text("This page needs the admin role")).to_be_visible()
