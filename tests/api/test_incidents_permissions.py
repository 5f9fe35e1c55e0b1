"""The role checks of the incident-mode, pause, scaling, preview and comparison endpoints, for every
kind of caller, against one world built once for the module (tests/shared_rows.py). The flows an
incident bot uses are in test_incidents_api.py, on an empty database."""

import pytest

from controlplane.roles import Role
from tests.api.test_incidents_api import COMPARE
from tests.callers import ANONYMOUS, clients_of, session_of, token_of, user_with_role
from tests.shared_rows import shared_rows
from tests.workloads.pools import pooled_class, run_pending
from workloads.models import AuditEvent
from workloads.services import incidents, pauses

CALLERS = ["anonymous", "outsider", "viewer", "operator", "admin", "admin_token", "read_token"]


@pytest.fixture(scope="module")
def shared_world(django_db_setup, django_db_blocker):
    """An active incident holding `paused-class`, a class paused on its own, a class running, and how
    each kind of caller authenticates. Built once for the module's tests (tests/shared_rows.py):
    what each test's request changes is rolled back with the test's own savepoint."""
    with shared_rows(django_db_blocker):
        admin = user_with_role("root-admin", Role.ADMIN)
        pooled_class("existing-class", instances=2, tier="standard")
        pooled_class("paused-class", instances=3, tier="deferrable")
        own = pooled_class("own-paused", instances=1, tier="standard")
        incidents.incident_mode_enter(actor=admin, reason="outage")
        pauses.pool_pause(workload_class=own, actor=admin, reason="bad deploy")
        run_pending()

        callers = {"anonymous": ANONYMOUS}
        roles = [("outsider", None), ("viewer", Role.VIEWER), ("operator", Role.OPERATOR), ("admin", Role.ADMIN)]
        for name, role in roles:
            callers[name] = session_of(user_with_role(f"{name}-user", role))
        for name, scopes in [("admin_token", ["*"]), ("read_token", ["read"])]:
            callers[name] = token_of(admin, name, scopes)
        yield callers


@pytest.fixture
def world(shared_world, db):
    """A new client per kind of caller (tests/callers.py)."""
    return clients_of(shared_world)


def _expect(operator: int, *, read: bool = False) -> dict:
    if read:
        return dict(anonymous=401, outsider=403, viewer=200, operator=200, admin=200, admin_token=200, read_token=200)
    return dict(
        anonymous=401, outsider=403, viewer=403, operator=operator, admin=operator, admin_token=operator, read_token=403
    )


READ = _expect(200, read=True)
MATRIX = [
    ("get", "/api/v1/incident-mode", None, READ),
    ("post", "/api/v1/incident-mode", {"reason": "second page"}, _expect(200)),  # already active: nothing new
    ("patch", "/api/v1/incident-mode", {"expires_in_minutes": 120}, _expect(200)),
    ("delete", "/api/v1/incident-mode", {"reason": "resolved"}, _expect(202)),
    ("get", "/api/v1/classes/existing-class/pause", None, READ),
    ("post", "/api/v1/classes/existing-class/pause", {"reason": "poison"}, _expect(202)),
    ("patch", "/api/v1/classes/own-paused/pause", {"expires_in_minutes": 60}, _expect(200)),
    ("delete", "/api/v1/classes/own-paused/pause", None, _expect(202)),
    ("delete", "/api/v1/classes/paused-class/pause", None, _expect(202)),  # out of the incident
    ("get", "/api/v1/classes/existing-class/scaling", None, READ),
    ("patch", "/api/v1/classes/existing-class/scaling", {"controller_enabled": False}, _expect(200)),
    ("post", "/api/v1/classes/existing-class/scaling/take-over", None, _expect(200)),
    ("get", "/api/v1/classes/existing-class/schedule-preview", None, READ),
    ("get", COMPARE, None, READ),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "url", "body", "expected"), MATRIX, ids=[f"{m} {u[:50]}" for m, u, *_ in MATRIX])
def test_permission_matrix(world, caller, method, url, body, expected):
    response = getattr(world[caller], method)(url, body, format="json")
    assert response.status_code == expected[caller], (caller, method, url, response.content[:300])
    if expected[caller] == 403 and method != "get" and caller != "anonymous":
        assert AuditEvent.objects.filter(action="request.denied").exists()
