"""Dead-letter triage in Chromium (issue 19, item 14): a rule's form counts, as it is typed, the
dead letters it would match now (the triage tick's own matching on the DeadLetterFilter); a group
offers a rule prefilled from it; an open payload keeps its message's id and status in view while
it scrolls."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.dashboards.helpers import BREACHED_SLUG, HEALTHY_SLUG


@pytest.fixture
def dead_letters(demo_fleet):
    """HEALTHY_SLUG: 3 new and 1 held 'sig-timeout', 2 new 'sig-unavailable' (one with a long
    payload); BREACHED_SLUG: 1 new 'sig-timeout'."""
    from tests.workloads.deadletter_helpers import dead_letter_row, event
    from workloads.models import DeadLetterStatus, WorkloadClass

    healthy = WorkloadClass.objects.get(slug=HEALTHY_SLUG)
    breached = WorkloadClass.objects.get(slug=BREACHED_SLUG)
    timeout = {"error_type": "Timeout", "error_message": "backend timed out", "error_signature": "sig-timeout"}
    for _ in range(3):
        dead_letter_row(healthy, **timeout)
    dead_letter_row(healthy, status=DeadLetterStatus.HELD, **timeout)
    dead_letter_row(breached, **timeout)
    dead_letter_row(healthy)
    long_payload = event(999, document=[{"line": n, "text": "lorem ipsum " * 6} for n in range(200)])
    return dead_letter_row(healthy, payload=long_payload)


def _preview(page):
    return page.locator("#rule-preview")


def test_a_rule_form_counts_what_it_would_match_as_it_is_typed(logged_in_page, dead_letters):
    page = logged_in_page("operator")
    page.goto("/dead-letters/rules/new/")
    expect(_preview(page)).to_contain_text("Give a signature, an attribute pattern, or both")

    page.get_by_label("Error signature").fill("sig-timeout")  # every class: 4 + 1
    expect(_preview(page).locator("[data-matched]")).to_have_text("5")
    expect(_preview(page).locator("[data-new]")).to_have_text("4")
    page.get_by_label("Class").select_option(HEALTHY_SLUG)
    expect(_preview(page).locator("[data-matched]")).to_have_text("4")
    expect(_preview(page).locator("[data-new]")).to_have_text("3")
    # An attribute pattern narrows the same match: the mirror's error type is an attribute too.
    page.get_by_label("Error signature").fill("")
    page.get_by_label("Attribute pattern").fill("cp-error-type=Unavail*")
    expect(_preview(page).locator("[data-matched]")).to_have_text("2")
    page.get_by_label("Attribute pattern").fill("not a pattern")
    expect(_preview(page)).to_contain_text("Write NAME=GLOB")
    # What the preview counts is what the triage tick would select (one matching, one filter).
    from workloads.models import TriageRule, WorkloadClass
    from workloads.services.triage import triage_rule_matches

    rule = TriageRule(workload_class=WorkloadClass.objects.get(slug=HEALTHY_SLUG), error_signature="sig-timeout")
    assert triage_rule_matches(rule).count() == 4
    assert page.js_errors == []


def test_a_group_offers_a_rule_prefilled_from_it(logged_in_page, dead_letters):
    page = logged_in_page("operator")
    page.goto("/dead-letters/")
    group = page.locator(f"#dl-group-{HEALTHY_SLUG}-sig-timeout")
    group.get_by_role("link", name="Create a rule from this group").click()
    page.wait_for_url("**/dead-letters/rules/new/?**")
    expect(page.get_by_label("Class")).to_have_value(HEALTHY_SLUG)
    expect(page.get_by_label("Error signature")).to_have_value("sig-timeout")
    expect(page.get_by_label("Name")).to_have_value(f"Timeout in {HEALTHY_SLUG}")
    expect(_preview(page).locator("[data-matched]")).to_have_text("4")
    page.get_by_label("Action").select_option(index=1)
    page.get_by_role("button", name="Create rule").click()
    page.wait_for_url("**/dead-letters/rules/")
    expect(page.locator("main")).to_contain_text(f"Timeout in {HEALTHY_SLUG}")
    assert page.js_errors == []

    viewer = logged_in_page("viewer")
    viewer.goto("/dead-letters/")
    expect(viewer.get_by_role("link", name="Create a rule from this group")).to_have_count(0)


@pytest.mark.parametrize("viewport", [(1280, 860), (390, 844)], ids=["laptop", "phone"])
def test_an_open_payload_keeps_its_id_and_status_in_view_while_it_scrolls(logged_in_page, dead_letters, viewport):
    long_row = dead_letters
    page = logged_in_page("viewer", viewport=viewport)
    page.goto(f"/dead-letters/messages/?workload_class={HEALTHY_SLUG}&error_signature=sig-unavailable")
    row = page.locator("tr.dl-row").filter(has=page.locator(f"a:has-text('{long_row.message_id}')"))
    row.locator(".dl-payload summary").click()
    box = row.locator(".dl-payload-box")
    expect(box).to_be_visible()
    box.evaluate("el => { el.scrollIntoView({block: 'start'}); el.scrollTop = el.scrollHeight / 2; }")
    assert box.evaluate("el => el.scrollTop") > 200  # the payload did scroll
    head = box.locator(".dl-payload-head")
    expect(head).to_contain_text(long_row.message_id)
    expect(head).to_contain_text("new")
    box_top, head_box = box.bounding_box()["y"], head.bounding_box()
    assert abs(head_box["y"] - box_top) <= 2, (box_top, head_box)  # pinned to the top of the box
    # ... and on top of the payload, not under it: the element drawn there is the header.
    covering = page.evaluate(
        "([x, y]) => !!document.elementFromPoint(x, y)?.closest('.dl-payload-head')",
        [head_box["x"] + 8, head_box["y"] + head_box["height"] / 2],
    )
    assert covering
    screenshot(page, f"dead-letter-payload-scrolled-{viewport[0]}")
    assert page.js_errors == []
