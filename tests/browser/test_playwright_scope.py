"""Chromium and Playwright's driver live as long as the test process, yet between browser tests the
thread is left as the other tests expect it (tests/browser/playwright_scope.py): no running event
loop, no DJANGO_ALLOW_ASYNC_UNSAFE, no database connection left open from the browser test."""

import asyncio
import os

from tests.browser.playwright_scope import ASYNC_UNSAFE

VARIABLE_BEFORE_ANY_TEST = os.environ.get(ASYNC_UNSAFE)  # read at collection, before Playwright starts


async def _answer() -> int:
    await asyncio.sleep(0)
    return 42


def test_between_browser_tests_the_thread_has_no_loop_no_exemption_and_no_connection_left(
    _chromium, _playwright_loop_shown, new_page, transactional_db
):
    from django.contrib.auth.models import Group
    from django.db import connections

    scope = _playwright_loop_shown
    page = new_page()
    page.set_content("<p>first</p>")
    Group.objects.count()  # the ORM works during a browser test
    connection_of_the_test = connections["default"]
    assert connection_of_the_test.connection is not None

    scope.suspend()  # what happens at the end of every browser test
    try:
        assert asyncio._get_running_loop() is None
        assert os.environ.get(ASYNC_UNSAFE) == VARIABLE_BEFORE_ANY_TEST
        assert asyncio.run(_answer()) == 42
        assert connection_of_the_test.connection is None, "the browser test's connection is still open"
        assert connections["default"] is not connection_of_the_test
        Group.objects.count()  # Django sees a synchronous thread: no SynchronousOnlyOperation
    finally:
        scope.resume()  # what happens at the start of the next one

    # The same Chromium and page go on where they were.
    page.set_content("<p>second</p>")
    assert page.text_content("p") == "second"
    assert page.context.browser is _chromium[0]
