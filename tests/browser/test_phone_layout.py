"""The on-call screens at phone size (390x844) in Chromium: nothing runs off the right edge or hides
in an unmarked sideways scroller, no two parts of a form or an audit row overlap, no word breaks in
the middle, the fleet reads as one card per class with its key numbers first, and a class page
shows its open alerts before its SLO cards. Screenshots land in var/screenshots/."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.browser.test_oncall_flows import dead_letters  # noqa: F401 (a fixture)
from tests.dashboards.helpers import (
    BREACHED_SLUG,
    HEALTHY_SLUG,
    feed_demo_telemetry,
    registered_steps_handler,
    request_steps_action,
)

PHONE = (390, 844)

# Every element of <main> whose right edge passes the viewport's, unless a scroller of its own
# (a table-wrap that still scrolls, with its edge shadow) holds it.
_OVERFLOWING = """() => {
  const limit = window.innerWidth + 1, out = [];
  for (const el of document.querySelectorAll('main *')) {
    const r = el.getBoundingClientRect();
    if (!r.width || r.right <= limit) continue;
    let clipped = false;
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const style = getComputedStyle(p);
      const scroller = ['auto', 'scroll', 'hidden'].includes(style.overflowX);
    if (scroller && p.getBoundingClientRect().right <= limit) { clipped = true; break; }
    }
    if (!clipped) out.push(el.tagName + '.' + el.className + ' ' + (el.textContent || '').trim().slice(0, 40));
  }
  return out;
}"""

# Pairs of sibling boxes that overlap: the fields of each filter form, the parts of each audit row.
_OVERLAPS = """(selector) => {
  const out = [];
  for (const parent of document.querySelectorAll(selector)) {
    const kids = [...parent.children]
      .filter(k => k.getBoundingClientRect().width && getComputedStyle(k).position !== 'absolute');
    for (let i = 0; i < kids.length; i++) for (let j = i + 1; j < kids.length; j++) {
      const a = kids[i].getBoundingClientRect(), b = kids[j].getBoundingClientRect();
      const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      const text = (el) => el.textContent.trim().slice(0, 30);
      if (x > 1 && y > 1) out.push(text(kids[i]) + ' / ' + text(kids[j]));
    }
  }
  return out;
}"""

# Words that the layout split across lines (each word of the matched elements' text must sit on one line).
_BROKEN_WORDS = """(selector) => {
  const out = [];
  for (const el of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const re = /\\S+/g; let m;
      while ((m = re.exec(node.data))) {
        const range = document.createRange();
        range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (tops.size > 1) out.push(m[0]);
      }
    }
  }
  return out;
}"""


def _check_screen(page, name: str):
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name
    assert page.evaluate(_OVERFLOWING) == [], name
    assert page.evaluate(_OVERLAPS, ".filters, .filters .segments, .compare-side") == [], name
    screenshot(page, f"phone-{name}")


@pytest.fixture
def phone_fleet(dead_letters):  # noqa: F811
    from django.utils import timezone

    feed_demo_telemetry(timezone.now())


def test_the_fleet_is_one_card_per_class_with_key_numbers_first(logged_in_page, phone_fleet):
    page = logged_in_page("viewer", viewport=PHONE)
    page.goto("/")
    _check_screen(page, "fleet")
    # What a phone shows first (docs/images/overview-phone.png is one of these).
    page.screenshot(path=str(screenshot(page, "phone-fleet").with_name("phone-fleet-first-screen.png")))
    wrap = page.locator(".fleet-wrap")
    # No hidden sideways scroller: every column is on the card.
    assert page.evaluate("(el) => el.scrollWidth <= el.clientWidth + 1", wrap.element_handle())
    card = page.locator(f"#fleet-row-{HEALTHY_SLUG}")
    box = card.bounding_box()
    assert box["width"] <= PHONE[0]
    name = card.locator(".class-cell a").bounding_box()
    status = card.locator(".status").bounding_box()
    # The class's name tops its card, its status follows, then the numbers on-call reads first.
    assert name["y"] < status["y"]
    tops = {
        col: card.locator(f'[data-col="{col}"]').bounding_box()["y"]
        for col in ("queue_age", "backlog", "alerts", "dead_letters", "p95", "budget", "instances", "tier", "cost")
    }
    assert status["y"] < tops["queue_age"]
    assert max(tops[c] for c in ("queue_age", "backlog", "alerts", "dead_letters")) < min(
        tops[c] for c in ("p95", "budget", "instances", "tier", "cost")
    )
    # Each number carries its column's name, and the sort links stay on screen.
    label = page.evaluate(
        "(el) => getComputedStyle(el, '::before').content",
        card.locator('[data-col="backlog"]').element_handle(),
    )
    assert label == '"Backlog"'
    sort = page.get_by_role("link", name="Backlog")
    expect(sort).to_be_visible()
    assert sort.bounding_box()["x"] + sort.bounding_box()["width"] <= PHONE[0]
    sort.click()
    expect(page).to_have_url(re.compile(r"sort=-backlog"))
    assert page.js_errors == []


def test_the_triage_screens_and_comparison_fit_a_phone(logged_in_page, phone_fleet):
    page = logged_in_page("operator", viewport=PHONE)
    page.goto("/dead-letters/")
    _check_screen(page, "dead-letter-groups")
    group = page.locator(f"#dl-group-{HEALTHY_SLUG}-sig-timeout")
    count = group.locator("td.num").first.bounding_box()  # the count is on the card, not scrolled away
    assert count["x"] >= 0 and count["x"] + count["width"] <= PHONE[0]

    page.goto(f"/dead-letters/messages/?workload_class={HEALTHY_SLUG}")
    _check_screen(page, "dead-letter-messages")
    error = page.locator(".dl-messages tbody tr").first.locator(".dl-error")
    assert error.bounding_box()["x"] + error.bounding_box()["width"] <= PHONE[0]
    # Selecting still works on the cards: the page box is there, labelled.
    page.get_by_label("Select every dead letter on this page").check()
    expect(page.locator("[data-selection-count]")).to_have_text("6 selected")

    page.goto(
        f"/compare/?a_class={HEALTHY_SLUG}&a_start=2026-01-01&a_end=2026-01-07&b_start=2026-01-08&b_end=2026-01-14"
    )
    _check_screen(page, "compare")
    row = page.locator('.comparison tr[data-row="failure-rate"]')
    for cell in row.locator("td").all():
        box = cell.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE[0]
    assert page.js_errors == []


def test_audit_cost_and_actions_read_cleanly_on_a_phone(logged_in_page, phone_fleet):
    page = logged_in_page("operator", viewport=PHONE)
    with registered_steps_handler():
        request_steps_action(
            actor=page.user,
            items=["a", "b"],
            target="document-processing, indexing-pipeline, batch-enrichment, policy-evaluation",
        )

    page.goto("/audit/")
    _check_screen(page, "audit")
    assert page.evaluate(_OVERLAPS, ".audit-row") == []
    # Action codes on one line each (they used to stack one character per line).
    heights = page.evaluate(
        "() => [...document.querySelectorAll('.audit-action code')].map(c => c.getClientRects().length)"
    )
    assert heights and set(heights) == {1}
    assert page.evaluate(_BROKEN_WORDS, ".audit-action, .audit-actor, .audit-when") == []

    page.goto("/cost/")
    _check_screen(page, "cost")
    period = page.locator("fieldset.segmented").first.bounding_box()
    start = page.get_by_label("From").bounding_box()
    assert period["y"] + period["height"] <= start["y"]  # the period control sits above the From field

    page.goto("/actions/")
    _check_screen(page, "actions")
    assert page.evaluate(_BROKEN_WORDS, ".target-cell") == []
    expect(page.locator(".target-cell").first).to_contain_text("batch-enrichment")
    assert page.js_errors == []


def test_a_class_page_shows_open_alerts_before_its_slo_cards(logged_in_page, phone_fleet):
    page = logged_in_page("viewer", viewport=PHONE)
    page.goto(f"/classes/{BREACHED_SLUG}/")
    _check_screen(page, "class-detail")
    alerts = page.locator("#alerts-title").bounding_box()
    slos = page.locator("#slos-title").bounding_box()
    assert alerts["y"] < slos["y"]
    expect(page.locator(".alert-list li").first).to_be_in_viewport()
    assert page.js_errors == []
