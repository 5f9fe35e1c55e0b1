"""Rows built once for a test module and shared by its tests, each test still isolated.

Some modules build the same costly world for every test (a two-hour metrics poll, thousands of
dead letters) and then only read it. `shared_rows` opens a transaction around the module: the
module-scoped fixture builds its rows inside it, every test's own transaction (pytest-django's
`db`, a django.test.TestCase) nests as a savepoint and is rolled back after the test as usual, and
the module's rows are rolled back when the module's fixture ends. Only for tests in a transaction
(`db`): a transactional test (`transactional_db`, `live_server`) would flush the shared rows.

The rollback reaches rows only. What a module shares besides them must not carry one test's
changes into the next: give each test new clients (tests/callers.py) and model objects read
afresh, and reset any process-level state a test may change (a cache, a test server's script).

Under pytest-xdist a worker runs a module's tests in chunks (the Makefile's --maxschedchunk), and
pytest ends module fixtures when the next test is in another module, so the rows are built once
per chunk rather than once per test.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

DEFAULT = ("default",)


@contextmanager
def shared_rows(django_db_blocker, databases=DEFAULT):
    """Inside a module-scoped fixture (which asks for `django_db_setup` so the test databases exist):
    rows created in the block stay for the module's tests and are rolled back at its end."""
    from django.db import transaction

    with ExitStack() as stack:
        stack.enter_context(django_db_blocker.unblock())
        for alias in databases:
            stack.enter_context(transaction.atomic(using=alias))
            # Runs as the block ends, before the atomic exits: the block always ends in a rollback.
            stack.callback(transaction.set_rollback, True, using=alias)
        yield
