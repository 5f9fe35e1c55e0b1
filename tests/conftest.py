import pytest
from rest_framework.test import APIClient

from controlplane.roles import Role
from tests.callers import PASSWORD, user_with_role
from workloads.services.ingestion_lookups import forget_all
from workloads.services.tokens import api_token_issue


@pytest.fixture(autouse=True)
def _fresh_ingestion_lookups():
    """Each test starts with the ingestion endpoint's per-process caches empty: ids and slugs are
    reused across tests' databases (workloads/services/ingestion_lookups.py)."""
    forget_all()
    yield
    forget_all()


@pytest.fixture
def make_user(db):
    def make(username: str, role: Role | None = Role.VIEWER, password: str = PASSWORD):
        return user_with_role(username, role, password)

    return make


# Personas, after healthchecks' alice/bob/charlie: one per role, plus a user with no role.
@pytest.fixture
def viewer(make_user):
    return make_user("vera-viewer", Role.VIEWER)


@pytest.fixture
def operator(make_user):
    return make_user("otto-operator", Role.OPERATOR)


@pytest.fixture
def admin_user(make_user):
    return make_user("ada-admin", Role.ADMIN)


@pytest.fixture
def outsider(make_user):
    return make_user("olga-outsider", None)


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def client_as(api):
    """client_as(user) -> an APIClient logged in with a session as that user."""

    def login(user):
        client = APIClient()
        client.force_login(user)
        return client

    return login


@pytest.fixture
def token_client():
    """token_client(user, scopes=None) -> (APIClient with a bearer token, token row)."""

    def make(user, scopes=None):
        token, raw = api_token_issue(actor=None, user=user, name="test-token", scopes=scopes)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client, token

    return make


# --- Google Cloud test doubles and the emulator count --------------------------------------------
from tests.contract.fakes.fixtures import (  # noqa: E402,F401  (fixtures for every test package)
    fake_cloud_run,
    fake_monitoring,
    gcp_fakes,
    pubsub_clients,
    pubsub_emulator,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Report every "emulator not installed" skip at one location, so `-ra` folds them into ONE
    line instead of one per test (pytest reports fixture skips at each test's own line)."""
    from tests.contract.fakes.emulator import MISSING

    report = yield
    if report.skipped and isinstance(report.longrepr, tuple) and MISSING in report.longrepr[2]:
        report.longrepr = ("tests/contract/fakes/emulator.py", 1, report.longrepr[2])
    return report


def pytest_terminal_summary(terminalreporter):
    """One line saying how many tests needing the Pub/Sub emulator ran (CI shows it, see .ci/run)."""
    outcome = {}
    for category in ("error", "failed", "skipped", "passed"):  # the worst outcome of a test wins
        for report in terminalreporter.stats.get(category, []):
            if "emulator" in getattr(report, "keywords", {}):
                outcome.setdefault(report.nodeid, category)
    counts = {category: list(outcome.values()).count(category) for category in ("passed", "skipped", "failed", "error")}
    line = f"emulator tests: {counts['passed']} passed, {counts['skipped']} skipped"
    if counts["failed"] or counts["error"]:
        line += f", {counts['failed'] + counts['error']} failed"
    terminalreporter.write_line(line)


@pytest.hookimpl(trylast=True)  # after pytest-django's sort into its three runs
def pytest_collection_modifyitems(items):
    """Known-long tests first in their run, spread over the workers (tests/scheduling.py)."""
    from tests.scheduling import long_tests_first

    long_tests_first(items)


@pytest.hookimpl(trylast=True)  # Django is set up by then (pytest-django's pytest_configure)
def pytest_configure(config):
    from tests import cpu_profile, template_database, transactional_reset

    cpu_profile.install(config)  # off unless TEST_CPU_PROFILE names a folder
    transactional_reset.install()
    template_database.build(config)
    template_database.use_sqlite_templates(config)


def pytest_unconfigure(config):
    from tests import template_database

    template_database.drop(config)
