"""The contract suite runs every test against each provider:

- local-postgres: the embedded provider on the test PostgreSQL database;
- local-sqlite:   the embedded provider on a SQLite database (the `contract_sqlite` alias);
- gcp:            the Google adapters, with Google's Pub/Sub emulator and in-process gRPC fakes of
                  Cloud Run Admin and Cloud Monitoring served through the real client libraries
                  (marker `emulator`; skipped with one line where the emulator is not installed).
"""

import pytest

# Handler threads only see committed rows, so the local params run as transactional tests on their
# own database alias (marks are read at collection, when pytest-django decides which test
# databases to create). The flush after each test is limited to the workloads and localcloud apps' tables, so
# the data migrations' rows (the role groups) survive for the tests that run later.
LOCAL_APPS = ["workloads", "workloads.providers.local"]
PROVIDERS = [
    pytest.param(
        "local-postgres",
        id="local-postgres",
        marks=pytest.mark.django_db(transaction=True, databases=["default"], available_apps=LOCAL_APPS),
    ),
    pytest.param(
        "local-sqlite",
        id="local-sqlite",
        marks=pytest.mark.django_db(transaction=True, databases=["contract_sqlite"], available_apps=LOCAL_APPS),
    ),
    pytest.param("gcp", id="gcp", marks=pytest.mark.emulator),
]


@pytest.fixture(params=PROVIDERS)
def harness(request):
    if request.param == "gcp":
        from tests.contract.harness_gcp import make_gcp_harness

        made = make_gcp_harness(request)
    else:
        from tests.contract.harness_local import make_local_harness

        made = make_local_harness(
            request, database="default" if request.param == "local-postgres" else "contract_sqlite"
        )
    try:
        yield made
    finally:
        made.close()
