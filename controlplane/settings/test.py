"""Test settings: only overrides of base.py.

Tests run against PostgreSQL on loopback (partial indexes, SKIP LOCKED and UPDATE races behave
differently on SQLite), unless DATABASE_URL says otherwise.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/controlplane")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
# A cache of this process only, whatever REDIS_URL the machine has.
os.environ.setdefault("CACHE_URL", "locmem://")
# Every test logs in from 127.0.0.1 and the cache lives as long as the session: login limits are
# off, and the rate-limit tests (tests/hardening) set the limits they exercise.
os.environ.setdefault("LOGIN_FAILURES_PER_USERNAME", "0")
os.environ.setdefault("LOGIN_FAILURES_PER_IP", "0")
os.environ.setdefault("LOGIN_FAILURES_PER_USERNAME_ALL_ADDRESSES", "0")

from controlplane.settings.base import *  # noqa: E402,F403
from controlplane.settings.base import DATABASES, _database_from_url  # noqa: E402

# Several checkouts may run their suites at once on one server: TEST_DATABASE_NAME keeps them apart.
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}
# Under pytest-xdist the workers' databases are copies of one migrated template (tests/template_database.py).
if os.environ.get("TEST_DATABASE_TEMPLATE"):
    DATABASES["default"].setdefault("TEST", {})["TEMPLATE"] = os.environ["TEST_DATABASE_TEMPLATE"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
SECURE_SSL_REDIRECT = False

# The contract suite also runs the embedded local provider on SQLite (what `make run` uses), in
# the same session, through this second alias; the local provider takes the alias to use.
# Under pytest-xdist each worker has its own file: pytest-django appends the worker's id (_gw0, ...)
# to TEST NAME, and NAME carries the same suffix from PYTEST_XDIST_WORKER, which the processes a
# test starts inherit, so they open the file of the worker that started them.
_contract_sqlite_file = f"/tmp/controlplane-{os.environ.get('TEST_DATABASE_NAME', 'test')}-contract.sqlite3"
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER")
DATABASES["contract_sqlite"] = {
    **_database_from_url(f"sqlite:///{_contract_sqlite_file}" + (f"_{_xdist_worker}" if _xdist_worker else "")),
    # It needs nothing from `default`: without this, a run selecting only SQLite tests fails with
    # "Circular dependency in TEST[DEPENDENCIES]".
    "TEST": {"NAME": _contract_sqlite_file, "DEPENDENCIES": []},
}
