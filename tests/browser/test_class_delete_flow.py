"""Deleting a class in Chromium: from the class page to the confirmation (each resource named, the
dead letters counted), then with its resources to the deletion action's page."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot


@pytest.fixture
def docs(transactional_db):
    from tests.workloads.deadletter_helpers import dead_letter_row, make_class
    from workloads.providers import get_providers
    from workloads.providers.specs import pool_spec

    workload_class = make_class(get_providers().queue, "doc-jobs", completion_topic="")
    get_providers().pools.ensure(pool_spec(workload_class), initial_instances=0)
    dead_letter_row(workload_class)
    return workload_class


def test_an_admin_deletes_a_class_with_its_resources(logged_in_page, docs):
    from workloads.models import Action, WorkloadClass

    page = logged_in_page("admin")
    page.goto("/classes/doc-jobs/")
    page.get_by_role("link", name="Delete class…").click()
    expect(page).to_have_url(re.compile("/classes/doc-jobs/delete/$"))
    listed = page.locator("#delete-resource-list tbody tr")
    expect(listed).to_have_count(5)
    for name in (
        docs.subscription,
        docs.dead_letter_subscription,
        docs.topic,
        docs.dead_letter_topic,
        docs.worker_pool,
    ):
        expect(page.locator("#delete-resource-list")).to_contain_text(name)
    expect(page.locator("#delete-dead-letters")).to_contain_text("1 undelivered dead letter would be lost")
    expect(page.get_by_label("Keep them: delete the class only")).to_be_checked()
    screenshot(page, "class-delete-confirmation")

    # Without the dead-letter box the deletion of resources is refused, saying why.
    page.get_by_label("Delete them with the class").check()
    page.get_by_label("Type the class's slug to confirm").fill("doc-jobs")
    page.get_by_role("button", name="Delete doc-jobs").click()
    expect(page.locator(".form-error").first).to_contain_text("1 undelivered dead letters of doc-jobs would be lost")
    assert WorkloadClass.objects.filter(slug="doc-jobs").exists()

    page.get_by_label("Delete them with the class").check()
    page.get_by_label(re.compile("Delete the resources although 1 undelivered")).check()
    page.get_by_label("Type the class's slug to confirm").fill("doc-jobs")
    page.get_by_role("button", name="Delete doc-jobs").click()
    action = Action.objects.get(kind="delete_resources")
    expect(page).to_have_url(re.compile(f"/actions/{action.pk}/$"))
    expect(page.locator("body")).to_contain_text("Delete cloud resources")
    assert not WorkloadClass.objects.filter(slug="doc-jobs").exists()
    assert not page.js_errors
