"""Who may call the alerts API: every endpoint x every kind of caller -> expected status, against
the world of tests/api/test_notifications_api.py built once for the module (tests/shared_rows.py)."""

import pytest

from tests.api.test_notifications_api import IN_FUTURE, build_world
from tests.callers import clients_of
from tests.notifications.receiver import start_receiver
from tests.shared_rows import shared_rows

CALLERS = ["anonymous", "viewer", "operator", "admin", "read_token"]


@pytest.fixture(scope="module")
def shared_receiver():
    """The webhook channel's receiver, for the module: stopping one waits up to half a second."""
    receiver = start_receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture(scope="module")
def shared_world(django_db_setup, django_db_blocker, shared_receiver):
    """Built once for the module's tests: what a test's request changes (a channel deleted, the
    incident acknowledged, the silence ended) is rolled back with the test's own savepoint."""
    with shared_rows(django_db_blocker):
        yield build_world(shared_receiver)


@pytest.fixture
def world(shared_world, shared_receiver, db):
    """The module's world with a new client per kind of caller, and the receiver as a test of its
    own would find it: no request recorded, no scripted reply left."""
    shared_receiver.requests.clear()
    shared_receiver.script.clear()
    return {**shared_world, "clients": clients_of(shared_world["callers"])}


def expect(viewer=403, operator=403, admin=200, read_token=403, anonymous=401):
    return {"anonymous": anonymous, "viewer": viewer, "operator": operator, "admin": admin, "read_token": read_token}


READ = expect(viewer=200, operator=200, read_token=200)
MATRIX = [
    ("get", "/api/v1/notification-channels/", None, READ),
    ("get", "/api/v1/notification-channels/{hook}/", None, READ),
    (
        "post",
        "/api/v1/notification-channels/",
        {"name": "new", "kind": "email", "config": {"to": ["a@example.com"]}},
        expect(admin=201),
    ),
    ("patch", "/api/v1/notification-channels/{hook}/", {"enabled": True}, expect()),
    ("post", "/api/v1/notification-channels/{hook}/test/", None, expect(operator=200)),
    ("delete", "/api/v1/notification-channels/{hook}/", None, expect(admin=204)),
    ("get", "/api/v1/notification-routes/", None, READ),
    ("post", "/api/v1/notification-routes/", {"name": "r2", "severity": "page", "channels": []}, expect(admin=201)),
    ("patch", "/api/v1/notification-routes/{route}/", {"order": 5}, expect()),
    ("delete", "/api/v1/notification-routes/{route}/", None, expect(admin=204)),
    ("get", "/api/v1/alert-incidents/", None, READ),
    ("get", "/api/v1/alert-incidents/{incident}/", None, READ),
    ("post", "/api/v1/alert-incidents/{incident}/acknowledge/", {"note": "mine"}, expect(operator=200)),
    ("get", "/api/v1/silences/", None, READ),
    (
        "post",
        "/api/v1/silences/",
        {"owner_team": "platform", "reason": "deploy", "expires_at": IN_FUTURE},
        expect(operator=201, admin=201),
    ),
    ("post", "/api/v1/silences/preview/", {"owner_team": "platform"}, expect(operator=200, admin=200)),
    ("post", "/api/v1/silences/{silence}/end/", None, expect(operator=200)),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "url", "body", "expected"), MATRIX, ids=[f"{m} {u}" for m, u, _b, _e in MATRIX])
def test_permission_matrix(world, caller, method, url, body, expected):
    response = getattr(world["clients"][caller], method)(url.format(**world), data=body, format="json")
    assert response.status_code == expected[caller], (caller, response.content[:300])
