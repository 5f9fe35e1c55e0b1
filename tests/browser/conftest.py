"""Browser tests: Playwright (Python) driving Debian's Chromium against pytest-django's live server.

Playwright's own browser download does not work on these machines, so the tests launch the
`chromium` found on PATH (`.ci/run` installs Debian's package when it is missing). Where there is
none, every browser test is skipped with one line saying how to install it.
"""

import os
import shutil
from pathlib import Path

import pytest

from tests.browser.playwright_scope import BrowserScope

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


@pytest.fixture(scope="session")
def _chromium():
    """(Chromium, its BrowserScope), started once per test process at its first browser test.

    Once per process, not per module: a launch of Chromium and of Playwright's driver cost more CPU
    than most browser tests themselves, and with a module split over several pytest-xdist workers
    it was paid again on each of them. Tests stay independent because each gets a fresh browser
    context (new_page): cookies, storage and cache are per context."""
    # Skipping here rather than with a marker per test makes the summary one line for them all.
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    # Playwright now has its loop marked as running in this thread; the scope takes that mark (and
    # DJANGO_ALLOW_ASYNC_UNSAFE) away between browser tests, see tests/browser/playwright_scope.py.
    scope = BrowserScope()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except BaseException:
        playwright.stop()
        scope.suspend()
        raise
    scope.suspend()
    yield chromium, scope
    with scope.active():
        chromium.close()
        playwright.stop()


@pytest.fixture(autouse=True)
def _playwright_loop_shown(request):
    """Playwright's loop shown to this thread for the whole of a test that uses the browser, its
    function fixtures included (None for the tests of this folder that use only Django's client).

    Autouse, so that it is set up before (and torn down after) the fixtures that use pages or the
    database: the test and its fixtures use one database connection (see BrowserScope.suspend)."""
    if "browser" not in request.fixturenames:
        yield None
        return
    _, scope = request.getfixturevalue("_chromium")
    with scope.active():
        yield scope


@pytest.fixture
def browser(_chromium):
    """The process's Chromium (contexts opened on it are the caller's to close)."""
    return _chromium[0]


@pytest.fixture(scope="module", autouse=True)
def _role_groups_after_module(django_db_blocker):
    yield
    # Live-server tests flush the database after each test, taking the role groups that a data
    # migration created with them; put them back for the tests that run after these.
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
        return watched(context.new_page())

    def watched(page):
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.js_errors = errors  # tests assert the page ran without script errors
        page.csp_violations = []
        page.on("console", lambda message, page=page: _note_csp_violation(page, message))
        # Another tab of the same browser context (its cookies: the same session), watched the same way.
        page.new_tab = lambda: watched(page.context.new_page())
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
