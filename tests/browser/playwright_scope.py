"""One Playwright driver and Chromium per test process, visible to Django only during browser tests.

Why this is needed: Playwright's sync API runs its asyncio loop in a greenlet of the thread that
started it, and between two sync calls it leaves that loop marked as the thread's *running* loop
(`asyncio._set_running_loop`, at the end of `wait_for_future` in playwright/_impl/_greenlets.py),
because its dispatcher greenlet is suspended inside `run_until_complete`. From then on, in that
thread:

- every ORM call raises SynchronousOnlyOperation ("You cannot call this from an async context"):
  Django's `async_unsafe` only asks whether a loop is running, unless DJANGO_ALLOW_ASYNC_UNSAFE is set;
- `asyncio.run()` and asgiref's `async_to_sync` refuse to start ("cannot be called from a running
  event loop").

While the browser lived for one test module, both lasted only for that module. Kept for the whole
test process (a launch of Chromium and the driver costs seconds of CPU, once per module it was most
of the browser tests' CPU), the mark and the variable would follow into every test the worker runs
after its first browser test, and into every subprocess those tests start.

So the mark and the variable are put in place only while a browser test runs (`BrowserScope.active`)
and taken away between tests. Nothing else changes for Playwright: every sync call, and so every
switch into its dispatcher greenlet, happens inside an active scope, where the loop is marked
exactly as Playwright left it; between tests the dispatcher is suspended and nothing runs it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


class BrowserScope:
    """Playwright's event loop in this thread, shown to the thread (and to Django) only while active.

    Create it right after `sync_playwright().start()`, while Playwright has its loop marked as
    running; the scope starts active."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()  # RuntimeError if Playwright has not started here
        self._saved_variable: str | None = None
        self._active = False
        self.resume()

    @contextmanager
    def active(self) -> Iterator[None]:
        """Playwright may be used inside (and the ORM too, as DJANGO_ALLOW_ASYNC_UNSAFE says)."""
        self.resume()
        try:
            yield
        finally:
            self.suspend()

    def resume(self) -> None:
        """Show Playwright's loop to this thread again, as Playwright left it, before using Playwright."""
        if self._active:
            return
        running = asyncio._get_running_loop()
        if running is not None and running is not self._loop:
            # Playwright's dispatcher would resume inside another loop's run; refuse loudly instead.
            raise RuntimeError("another event loop is running in this thread; Playwright cannot be resumed here")
        asyncio._set_running_loop(self._loop)
        self._saved_variable = os.environ.get(ASYNC_UNSAFE)
        # The tests' own ORM calls are synchronous; only Playwright's mark makes Django think otherwise.
        os.environ[ASYNC_UNSAFE] = "true"
        self._active = True

    def suspend(self) -> None:
        """Leave the thread as it was before Playwright started: no running loop, the variable as it was."""
        if not self._active:
            return
        self._active = False
        # While a loop runs in the thread, Django keeps the thread's database connections apart
        # from the ones it uses otherwise (asgiref's Local with thread_critical=True: one set per
        # asyncio context, another per thread). Close the ones opened under the mark now, while they
        # are still reachable: left open they would outlive the test, and the test database could
        # not be dropped at the end of the run ("being accessed by other users").
        connections.close_all()
        if asyncio._get_running_loop() is self._loop:
            asyncio._set_running_loop(None)
        if self._saved_variable is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = self._saved_variable
