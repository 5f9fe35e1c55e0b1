"""One labelled clock on every screen, in Chromium: times show in UTC with "UTC" after them until the
user picks "Local" in the top bar; then every time shows in the browser's zone with that zone's
name, on every screen and on every browser the user signs in from (the choice is kept with the
user, PATCH /api/v1/me/ does the same)."""

import re
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from tests.browser.test_oncall_flows import dead_letters  # noqa: F401 (a fixture)

ZONE_NAME = """() => new Intl.DateTimeFormat('en-GB', {timeZoneName: 'short'}).formatToParts(new Date())
  .find(p => p.type === 'timeZoneName').value"""


def _same_user_page(new_page, live_server, user, **options):
    """Another browser (another device) signed in as `user`."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    page = new_page(**options)
    cookie = {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value}
    page.context.add_cookies([{**cookie, "url": live_server.url}])
    return page


def test_one_labelled_clock_everywhere_and_a_switch_kept_per_user(
    logged_in_page,
    new_page,
    live_server,
    dead_letters,  # noqa: F811
):
    from workloads.models import AuditEvent, DeadLetter, UserPreference

    event = AuditEvent.objects.filter(action="workload_class.create").first()
    page = logged_in_page("viewer", timezone_id="America/New_York")
    when = page.locator(f"#audit-{event.pk} .audit-when")

    # By default, UTC, and it says so, on every screen (the browser is in New York).
    page.goto("/audit/")
    expect(when).to_have_text(event.occurred_at.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S UTC"))
    expect(page.get_by_role("button", name="UTC")).to_have_attribute("aria-pressed", "true")
    page.goto("/dead-letters/")
    for text in page.locator("#dead-letter-groups time").all_text_contents():
        assert text.endswith(" UTC"), text
    page.goto("/")
    expect(page.locator("#fleet-updated time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d UTC$"))

    # "Local" shows New York time, named.
    page.goto("/audit/")
    page.get_by_role("button", name="Local").click()
    expect(page).to_have_url(re.compile(r"/audit/$"))
    expect(page.locator("html")).to_have_attribute("data-time-display", "local")
    expect(page.get_by_role("button", name="Local")).to_have_attribute("aria-pressed", "true")
    zone = page.evaluate(ZONE_NAME)
    assert zone != "UTC"
    new_york = event.occurred_at.astimezone(ZoneInfo("America/New_York"))
    expect(when).to_have_text(new_york.strftime("%Y-%m-%d %H:%M:%S ") + zone)
    page.goto("/dead-letters/")
    for text in page.locator("#dead-letter-groups time").all_text_contents():
        assert text.endswith(" " + zone), text
    assert UserPreference.objects.get(user=page.user).time_display == "local"
    assert AuditEvent.objects.filter(action="user.time_display", actor_label=page.user.username).count() == 1

    # The choice travels with the user: another browser, in Tokyo, shows Tokyo time.
    other = _same_user_page(new_page, live_server, page.user, timezone_id="Asia/Tokyo")
    other.goto("/audit/")
    tokyo = event.occurred_at.astimezone(ZoneInfo("Asia/Tokyo"))
    expect(other.locator(f"#audit-{event.pk} .audit-when")).to_have_text(
        tokyo.strftime("%Y-%m-%d %H:%M:%S ") + other.evaluate(ZONE_NAME)
    )
    last_seen = DeadLetter.objects.order_by("-last_seen").first().last_seen.astimezone(ZoneInfo("Asia/Tokyo"))
    other.goto("/dead-letters/")
    expect(other.locator("#dead-letter-groups td[data-label='Last seen'] time").first).to_contain_text(
        f"{last_seen:%H:%M} "
    )

    # And back to UTC.
    other.get_by_role("button", name="UTC").click()
    expect(other.locator("html")).to_have_attribute("data-time-display", "utc")
    other.goto("/audit/")
    expect(other.locator(f"#audit-{event.pk} .audit-when")).to_have_text(
        event.occurred_at.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S UTC")
    )
    assert page.js_errors == [] and other.js_errors == []


def test_chart_times_follow_the_chosen_clock(logged_in_page):
    page = logged_in_page("viewer", timezone_id="Asia/Kolkata")  # UTC+5:30: no hour lines up by chance
    page.goto("/")
    page.wait_for_function("() => !!window.ControlPlane")
    moment = "2026-03-01T10:00:00Z"
    formatted = page.evaluate(f"() => ControlPlane.formatTime(new Date('{moment}'), 'datetime')")
    assert formatted == "Sun 1 Mar 10:00 UTC"
    assert page.evaluate(f"() => ControlPlane.timeFields(new Date('{moment}')).hours") == 10
    page.get_by_role("button", name="Local").click()
    expect(page.locator("html")).to_have_attribute("data-time-display", "local")
    formatted = page.evaluate(f"() => ControlPlane.formatTime(new Date('{moment}'), 'datetime')")
    assert formatted == "Sun 1 Mar 15:30 " + page.evaluate(ZONE_NAME)
    assert page.evaluate(f"() => ControlPlane.timeFields(new Date('{moment}')).minutes") == 30
    assert page.js_errors == []
