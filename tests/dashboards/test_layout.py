"""The layout every page shares: navigation by role, the user and role, logout, skip link, CSRF
for htmx, messages as toasts, the incident banner; and no asset from the internet."""

import json
import re
from datetime import UTC, datetime
from html import escape as html_escape
from html import unescape
from pathlib import Path

import pytest
import time_machine
from django.contrib import messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.template.loader import render_to_string
from django.test import Client, RequestFactory

from dashboards.charts import DURATION_UNITS

ROOT = Path(__file__).resolve().parents[2]


def _nav(html: str) -> list[str]:
    nav = re.search(r'<nav class="mainnav" aria-label="Main">(.*?)</nav>', html, re.S).group(1)
    return re.findall(r"<a [^>]*>([^<]+)</a>", nav)


SCREENS = [
    "Fleet",
    "Dead letters",
    "Alerts",
    "Incidents",
    "Schedules",
    "Cost",
    "Compare",
    "Migrations",
    "Actions",
    "Audit",
    "API docs",
]


def test_the_navigation_follows_the_role(ui_client, viewer, operator, admin_user):
    assert _nav(ui_client(viewer).get("/").content.decode()) == SCREENS
    assert _nav(ui_client(operator).get("/").content.decode()) == SCREENS
    admin_screens = [*SCREENS[:-1], "Users", "API docs", "Admin"]  # people are managed by admins
    assert _nav(ui_client(admin_user).get("/").content.decode()) == admin_screens


@pytest.mark.urls("tests.dashboards.urls_extra")
def test_screens_appear_in_the_navigation_once_their_url_exists(ui_client, viewer):
    # The test URLconf leaves the comparison screen out: its item goes, the others stay.
    assert _nav(ui_client(viewer).get("/").content.decode()) == [s for s in SCREENS if s != "Compare"]


def test_an_action_page_belongs_to_the_actions_section(ui_client, viewer, steps_handler):
    from tests.dashboards.helpers import request_steps_action

    action = request_steps_action(actor=viewer, items=["a"])
    html = ui_client(viewer).get(f"/actions/{action.pk}/").content.decode()
    assert re.search(r'<a href="/actions/" aria-current="page">Actions</a>', html)


def test_users_without_a_role_get_no_navigation(ui_client, outsider):
    html = ui_client(outsider).get("/").content.decode()
    assert _nav(html) == []
    assert "no role" in html


def test_the_current_section_is_marked(ui_client, viewer, demo_fleet):
    for url in ("/", "/classes/document-processing/"):
        html = ui_client(viewer).get(url).content.decode()
        assert '<a href="/" aria-current="page">Fleet</a>' in html, url


def test_every_page_names_the_user_and_role_and_logs_out_with_a_post(ui_client, operator):
    html = ui_client(operator).get("/").content.decode()
    assert "otto-operator" in html
    assert 'class="role-badge role-operator"' in html and ">operator</span>" in html
    assert re.search(
        r'<form method="post" action="/accounts/logout/">\s*<input type="hidden" name="csrfmiddlewaretoken"', html
    )
    assert ui_client(operator).get("/accounts/logout/").status_code == 405  # never a GET


def test_logout_ends_the_session(ui_client, viewer):
    client = ui_client(viewer)
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302  # back to the login page


def test_the_csrf_token_rides_on_body_for_htmx_and_is_enforced(viewer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    html = client.get("/").content.decode()
    token = re.search(r"<body hx-headers='\{\"x-csrftoken\": \"([^\"]+)\"\}'[^>]*>", html).group(1)
    # An htmx POST sends that header; without it Django refuses (and explains, see 403_csrf.html).
    assert client.post("/accounts/logout/", headers={"HX-Request": "true"}).status_code == 403
    assert client.post("/accounts/logout/", headers={"HX-Request": "true", "X-CSRFToken": token}).status_code == 302


def test_there_is_a_skip_link_to_main_content(ui_client, viewer):
    html = ui_client(viewer).get("/").content.decode()
    assert html.index('<a class="skip-link" href="#main">') < html.index('aria-label="Main"')
    assert '<main id="main" tabindex="-1">' in html


def _request_with_messages(user):
    request = RequestFactory().get("/")
    request.user = user
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


def test_messages_are_toasts_errors_interrupt_the_rest_wait(viewer):
    request = _request_with_messages(viewer)
    messages.success(request, "Replay of 12 messages queued.")
    messages.error(request, "The worker pool refused the change.")
    html = render_to_string("base.html", request=request)
    toasts = re.search(r'<div id="toasts" class="toasts">(.*?)</div>\s*<main', html, re.S).group(1)
    assert re.search(r'class="toast toast-success" role="status">.*Replay of 12 messages queued.', toasts, re.S)
    assert re.search(r'class="toast toast-error" role="alert">.*The worker pool refused the change.', toasts, re.S)
    assert toasts.count('aria-label="Dismiss message"') == 2


def test_the_toast_region_can_be_refreshed_out_of_band(viewer):
    html = render_to_string("dashboards/partials/toasts.html", {"oob": True, "messages": []})
    assert '<div id="toasts" class="toasts" hx-swap-oob="true">' in html


def _incident():
    from workloads.models import IncidentMode

    return IncidentMode.objects.create(
        started_by_label="otto-operator",
        reason="Database failover in europe-west1",
        ticket="INC-4711",
        started_at=datetime(2026, 3, 4, 9, 30, tzinfo=UTC),
        expires_at=datetime(2026, 3, 4, 13, 30, tzinfo=UTC),
    )


def test_no_incident_no_banner(ui_client, viewer):
    assert b"Incident mode is active" not in ui_client(viewer).get("/").content


def test_an_active_incident_shows_on_every_page_with_who_why_since_and_expiry(ui_client, viewer, demo_fleet):
    _incident()
    with time_machine.travel(datetime(2026, 3, 4, 10, 0, tzinfo=UTC), tick=False):
        for url in ("/", "/classes/document-processing/", "/classes/missing/"):
            html = ui_client(viewer).get(url).content.decode()
            banner = re.search(r'<section class="incident-banner".*?</section>', html, re.S).group(0)
            assert "otto-operator" in banner
            assert "“Database failover in europe-west1”" in banner and "INC-4711" in banner
            assert 'datetime="2026-03-04T09:30:00+00:00"' in banner and "(30\xa0minutes ago)" in banner
            assert 'datetime="2026-03-04T13:30:00+00:00"' in banner and "(in 3\xa0hours, 30\xa0minutes)" in banner


def test_the_banner_is_not_in_htmx_fragments_nor_shown_to_users_without_a_role(ui_client, viewer, outsider):
    _incident()
    assert b"incident-banner" in ui_client(viewer).get("/").content
    assert b"incident-banner" not in ui_client(viewer).get("/", headers={"HX-Request": "true"}).content
    assert b"incident-banner" not in ui_client(outsider).get("/").content


def test_no_page_loads_anything_from_the_internet():
    external = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)
    css_import = re.compile(r"""url\(\s*["']?(?:https?:)?//|@import""", re.I)
    offenders = []
    for path in [
        *(ROOT / "templates").rglob("*.html"),
        *(ROOT / "static").rglob("*.css"),
        *(ROOT / "static/js").rglob("*.js"),
    ]:
        text = path.read_text()
        if external.search(text) or css_import.search(text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_vendored_libraries_carry_version_and_licence():
    readme = (ROOT / "static/vendor/README.md").read_text()
    for folder, version, asset in (("htmx", "2.0.11", "htmx.min.js"), ("uplot", "1.6.32", "uPlot.iife.min.js")):
        base = ROOT / "static/vendor" / folder
        assert (base / "VERSION").read_text().strip() == version
        assert (base / "LICENSE").stat().st_size > 100
        assert (base / asset).stat().st_size > 10_000
        assert version in readme
    assert 'version:"2.0.11"' in (ROOT / "static/vendor/htmx/htmx.min.js").read_text()  # the file matches VERSION


def test_pages_tell_the_browser_the_servers_staleness_threshold(ui_client, viewer, settings):
    # static/js/app.js reads it, so the browser calls data stale exactly when the server does.
    settings.TELEMETRY_STALE_AFTER_SECONDS = 120
    html = ui_client(viewer).get("/").content.decode()
    units = html_escape(json.dumps([list(unit) for unit in DURATION_UNITS]))
    assert (
        f'<html lang="en" data-stale-after-seconds="120" data-duration-units="{units}" data-time-display="utc">' in html
    )


def test_pages_tell_the_browser_the_servers_duration_units(ui_client, viewer):
    # static/js/app.js and charts.js write durations in these units, as seconds_label does.
    html = ui_client(viewer).get("/").content.decode()
    attribute = re.search(r'<html [^>]*data-duration-units="([^"]*)"', html).group(1)
    units = json.loads(unescape(attribute))
    assert [unit[2] for unit in units] == ["ms", "s", "min", "h", "d"]
    assert units == [list(unit) for unit in DURATION_UNITS]
