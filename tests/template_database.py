"""One migrated template of each test database for all pytest-xdist workers of a run.

Each worker creates its own test databases (`<name>_gw0`, ...). Migrated one by one, the four
workers would run every migration four times at once on a 2-core machine. Instead the controller
process migrates the templates once before it starts the workers, and each worker's databases
start as copies of them:

- PostgreSQL (`default`): `<name>_template`, and each worker's database is created with
  `CREATE DATABASE ... TEMPLATE` (Django's TEST["TEMPLATE"], which controlplane/settings/test.py
  reads from TEST_DATABASE_TEMPLATE).
- SQLite (the contract suite's `contract_sqlite`, a file): `<test file>_template`, copied to the
  worker's file where Django would create an empty one (TEST_SQLITE_TEMPLATES names the copies to
  make; `use_sqlite_templates` runs in each worker). Migrated by each worker, it was most of a
  worker's first setup (53-75 s measured on the shared machine under a full run).

Django still runs `migrate` on every copy, which finds nothing to apply, so a template that missed a
migration is completed there, never silently used as it is. The templates are built fresh each run
and dropped at its end.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

ENV = "TEST_DATABASE_TEMPLATE"
SQLITE_ENV = "TEST_SQLITE_TEMPLATES"  # JSON: {alias: template file}


def _is_xdist_controller(config) -> bool:
    numprocesses = getattr(config.option, "numprocesses", None)
    return not hasattr(config, "workerinput") and bool(numprocesses) and not config.option.collectonly


def _template_name(connection) -> str:
    return f"{connection.creation._get_test_db_name()}_template"


def _sqlite_files(connections) -> list:
    """The SQLite aliases kept in a file in tests (an in-memory one has nothing to copy)."""
    return [
        connections[alias]
        for alias in connections
        if connections[alias].vendor == "sqlite"
        and not connections[alias].creation.is_in_memory_db(connections[alias].creation._get_test_db_name())
    ]


def _remove_sqlite(path: str) -> None:
    for leftover in (path, f"{path}-wal", f"{path}-shm"):
        Path(leftover).unlink(missing_ok=True)


def _copy_sqlite(template: str, name: str) -> None:
    _remove_sqlite(name)
    # The backup API copies a consistent file, whatever journal the template was left in.
    with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(name)) as copy:
        source.backup(copy)


def _migrate_into(connection, name: str) -> None:
    from django.core.management import call_command

    original = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = name
    try:
        call_command("migrate", verbosity=0, interactive=False, database=connection.alias)
    finally:
        connection.close()  # a PostgreSQL template must have no sessions; a SQLite file is then whole
        connection.settings_dict["NAME"] = original


def build(config) -> None:
    """In the xdist controller: migrate fresh templates and point the workers at them."""
    if not _is_xdist_controller(config):
        return
    from django.db import connections
    from pytest_django.plugin import blocking_manager_key

    with config.stash[blocking_manager_key].unblock():
        connection = connections["default"]
        if connection.vendor == "postgresql":
            template = _template_name(connection)
            quoted = connection.ops.quote_name(template)
            with connection._nodb_cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
                cursor.execute(f"CREATE DATABASE {quoted}")
            _migrate_into(connection, template)
            os.environ[ENV] = template  # the workers start after this and inherit it
        sqlite_templates = {}
        for sqlite in _sqlite_files(connections):
            template = _template_name(sqlite)
            _remove_sqlite(template)
            _migrate_into(sqlite, template)
            sqlite_templates[sqlite.alias] = template
        if sqlite_templates:
            os.environ[SQLITE_ENV] = json.dumps(sqlite_templates)


def use_sqlite_templates(config) -> None:
    """In a worker: each SQLite test database named in TEST_SQLITE_TEMPLATES starts as a copy of its
    template instead of an empty file (Django's sqlite3 creation, wrapped)."""
    templates = json.loads(os.environ.get(SQLITE_ENV) or "{}")
    if not hasattr(config, "workerinput") or not templates:
        return
    from django.db.backends.sqlite3.creation import DatabaseCreation

    create_empty = DatabaseCreation._create_test_db

    def create_from_template(self, verbosity, autoclobber, keepdb=False):
        name = create_empty(self, verbosity, autoclobber, keepdb)  # removes an old file unless keepdb
        template = templates.get(self.connection.alias)
        if template and not (keepdb and os.path.exists(name)):
            _copy_sqlite(template, name)
        return name

    DatabaseCreation._create_test_db = create_from_template


def copy_sqlite_template(alias: str, destination: Path) -> bool:
    """Copy the migrated SQLite template of `alias` to `destination` (a new file), for a test that
    starts processes on a database of its own; False when this run has no such template (a run
    without xdist), and the caller migrates from scratch."""
    template = json.loads(os.environ.get(SQLITE_ENV) or "{}").get(alias)
    if not template or not os.path.exists(template):
        return False
    _copy_sqlite(template, str(destination))
    return True


def drop(config) -> None:
    if not _is_xdist_controller(config):
        return
    from django.db import connections
    from pytest_django.plugin import blocking_manager_key

    if ENV in os.environ:
        connection = connections["default"]
        with config.stash[blocking_manager_key].unblock(), connection._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(os.environ.pop(ENV))}")
    for template in json.loads(os.environ.pop(SQLITE_ENV, "") or "{}").values():
        _remove_sqlite(template)
