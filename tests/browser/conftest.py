"""Browser tests: Playwright (Python) driving Debian's Chromium against pytest-django's live server.

Playwright's own browser download does not work on these machines, so the tests launch the
`chromium` found on PATH (`.ci/run` installs Debian's package when it is missing). Where there is
none, every browser test is skipped with one line saying how to install it.
"""

import os
import shutil
from pathlib import Path

import pytest

BROWSER_DIR = Path(__file__).resolve().parent
SCREENSHOT_DIR = BROWSER_DIR.parent.parent / "var" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-dev-shm-usage"]
NO_CHROMIUM = "Chromium not found on PATH: apt-get install -y chromium"
PASSWORD = "correct-horse-battery-9"


def pytest_collection_modifyitems(config, items):
    # Everything under tests/browser/ is a browser test, so `-m "not browser"` leaves them out.
    for item in items:
        if BROWSER_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Report every "no Chromium" skip from this file, so the summary folds them into one line.
    report = yield
    if report.skipped and CHROMIUM is None and isinstance(report.longrepr, tuple) and NO_CHROMIUM in report.longrepr[2]:
        report.longrepr = (__file__, None, report.longrepr[2])
    return report


@pytest.fixture(scope="module")
def browser(django_db_blocker):
    # Skipping here rather than with a marker per test makes the summary one line for them all.
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, so Django would refuse
    # ORM calls from the tests ("cannot call this from an async context") although they are
    # synchronous. Allowed only while the browser runs: module scope ends the loop before other
    # test modules (and subprocesses that run `check --deploy`) see either.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
        # Live-server tests flush the database after each test, taking the role groups that a
        # data migration created with them; put them back for the tests that run after these.
        with django_db_blocker.unblock():
            _ensure_role_groups()


@pytest.fixture
def new_page(browser, live_server):
    """new_page(color_scheme="light", viewport=(1280, 860), timezone_id="UTC") -> a page in a fresh
    browser context whose relative URLs go to the live server. Every context is closed after the test."""

    def make(*, color_scheme: str = "light", viewport: tuple[int, int] = (1280, 860), timezone_id: str = "UTC"):
        context = browser.new_context(
            base_url=live_server.url,
            color_scheme=color_scheme,
            viewport={"width": viewport[0], "height": viewport[1]},
            timezone_id=timezone_id,
            locale="en-GB",
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        # Every Content-Security-Policy violation (Chromium reports each on the console) fails the
        # test that caused it, so every browser test also proves its screens live with the policy.
        context.add_init_script(_REPORT_CSP_VIOLATIONS)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.js_errors = errors  # tests assert the page ran without script errors
        page.csp_violations = []
        page.on("console", lambda message, page=page: _note_csp_violation(page, message))
        pages.append(page)
        return page

    contexts, pages = [], []
    yield make
    for context in contexts:
        context.close()
    violations = [violation for page in pages for violation in page.csp_violations]
    if violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(violations))


_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const blocked = event.blockedURI || "inline";
  const where = event.sourceFile ? ` (${event.sourceFile}:${event.lineNumber}:${event.columnNumber})` : "";
  console.error(`Content Security Policy violation: ${event.violatedDirective} blocked ${blocked}${where}`);
});
"""


def _note_csp_violation(page, message) -> None:
    if "Content Security Policy" in message.text:
        page.csp_violations.append(f"{page.url}: {message.text}")


def _ensure_role_groups():
    # The live server's transactional tests flush the database between tests, and with it the
    # role groups that a data migration created.
    from django.contrib.auth.models import Group

    from controlplane.roles import ROLE_GROUP_NAMES

    for name in ROLE_GROUP_NAMES:
        Group.objects.get_or_create(name=name)


@pytest.fixture
def make_browser_user(live_server):
    def make(username: str, role_name: str | None):
        from django.contrib.auth import get_user_model

        from controlplane.roles import Role
        from workloads.services.users import user_create

        _ensure_role_groups()
        if role_name is None:
            return get_user_model().objects.create_user(username=username, password=PASSWORD)
        return user_create(actor=None, username=username, role=Role.from_name(role_name), password=PASSWORD)

    return make


@pytest.fixture
def logged_in_page(new_page, live_server, make_browser_user):
    """logged_in_page("viewer" | "operator" | "admin" | None, **new_page options) -> a page whose
    browser holds a session of a fresh user with that role (None: a user with no role)."""

    def make(role_name: str | None, **options):
        from django.conf import settings
        from django.test import Client

        user = make_browser_user(f"{role_name or 'norole'}-{os.urandom(3).hex()}", role_name)
        client = Client()
        client.force_login(user)
        page = new_page(**options)
        page.context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                    "url": live_server.url,
                }
            ]
        )
        page.user = user
        return page

    return make


@pytest.fixture
def demo_fleet(transactional_db):
    from demo.fleet import seed_demo_fleet

    seed_demo_fleet()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot to var/screenshots/<name>.png for reviewers."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
