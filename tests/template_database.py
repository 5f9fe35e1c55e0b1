"""One migrated PostgreSQL template for all pytest-xdist workers of a run.

Each worker creates its own test database (`<name>_gw0`, ...). Migrated one by one, the four
workers would run every migration four times at once on a 2-core machine. Instead the controller
process migrates `<name>_template` once before it starts the workers, and each worker's database
is created as a copy of it (`CREATE DATABASE ... TEMPLATE`: Django's TEST["TEMPLATE"], which
controlplane/settings/test.py reads from TEST_DATABASE_TEMPLATE). Django still runs `migrate` on
the copy, which finds nothing to apply, so a template that missed a migration is completed there,
never silently used as it is. The template is built fresh each run and dropped at its end.

Only PostgreSQL: the contract suite's SQLite alias (`contract_sqlite`) is still migrated by each
worker at its first database test, which with the load of a full run is most of that first
setup (53-75 s measured on the shared machine; a copied SQLite file would be the next step).
"""

from __future__ import annotations

import os

ENV = "TEST_DATABASE_TEMPLATE"


def _is_xdist_controller(config) -> bool:
    numprocesses = getattr(config.option, "numprocesses", None)
    return not hasattr(config, "workerinput") and bool(numprocesses) and not config.option.collectonly


def _template_name(connection) -> str:
    return f"{connection.creation._get_test_db_name()}_template"


def build(config) -> None:
    """In the xdist controller: migrate a fresh template and point the workers at it."""
    if not _is_xdist_controller(config):
        return
    from django.core.management import call_command
    from django.db import connections
    from pytest_django.plugin import blocking_manager_key

    connection = connections["default"]
    if connection.vendor != "postgresql":
        return
    template = _template_name(connection)
    quoted = connection.ops.quote_name(template)
    with config.stash[blocking_manager_key].unblock():
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
            cursor.execute(f"CREATE DATABASE {quoted}")
        original = connection.settings_dict["NAME"]
        connection.close()
        connection.settings_dict["NAME"] = template
        try:
            call_command("migrate", verbosity=0, interactive=False, database="default")
        finally:
            connection.close()  # a template must have no sessions for CREATE DATABASE ... TEMPLATE
            connection.settings_dict["NAME"] = original
    os.environ[ENV] = template  # the workers start after this and inherit it


def drop(config) -> None:
    if not _is_xdist_controller(config) or ENV not in os.environ:
        return
    from django.db import connections
    from pytest_django.plugin import blocking_manager_key

    connection = connections["default"]
    with config.stash[blocking_manager_key].unblock(), connection._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(os.environ.pop(ENV))}")
