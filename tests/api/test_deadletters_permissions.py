"""Who may call the dead-letter, replay, triage-rule, seek and snapshot endpoints: every endpoint
x every kind of caller -> expected status, against one world built once for the module
(tests/shared_rows.py). What each endpoint returns is tests/api/test_deadletters_api.py."""

import pytest

from controlplane.roles import Role
from tests.callers import ANONYMOUS, clients_of, session_of, user_with_role
from tests.shared_rows import shared_rows
from tests.workloads.deadletter_helpers import dead_letter_row, event, make_class
from workloads.models import TriageRule
from workloads.providers import get_providers
from workloads.services.deadletters import DeadLetterFilter, replay_request

CALLERS = ["anonymous", "outsider", "viewer", "operator", "admin"]


@pytest.fixture(scope="module")
def shared_world(django_db_setup, django_db_blocker):
    """A class with three dead letters, a replay of the third, a triage rule, and how each kind of
    caller authenticates. Built once for the module's tests (tests/shared_rows.py): what a test's
    request changes (a letter discarded, the rule deleted, a replay requested) is rolled back with
    the test's own savepoint."""
    with shared_rows(django_db_blocker):
        docs = make_class(get_providers().queue, "doc-jobs")
        rows = [dead_letter_row(docs) for _ in range(3)]
        replay = replay_request(actor=None, selection=DeadLetterFilter(workload_class=docs, ids=(rows[2].pk,)))
        rule = TriageRule.objects.create(name="noise", error_signature="sig-noise", action="discard")
        callers = {"anonymous": ANONYMOUS}
        for name, role in [
            ("outsider", None),
            ("viewer", Role.VIEWER),
            ("operator", Role.OPERATOR),
            ("admin", Role.ADMIN),
        ]:
            callers[name] = session_of(user_with_role(f"{name}-user", role))
        yield {"callers": callers, "dl": rows[0].pk, "dl2": rows[1].pk, "replay": replay.pk, "rule": rule.pk}


@pytest.fixture
def world(shared_world, db):
    """The module's world with a new client per kind of caller (tests/callers.py)."""
    return {**shared_world, "clients": clients_of(shared_world["callers"])}


def _expect(ok, *, viewer=403):
    return {"anonymous": 401, "outsider": 403, "viewer": viewer, "operator": ok, "admin": ok}


READ = _expect(200, viewer=200)
MATRIX = [
    ("get", "/api/v1/dead-letters/", None, READ),
    ("get", "/api/v1/dead-letters/{dl}/", None, READ),
    (
        "post",
        "/api/v1/dead-letters/discard/",
        lambda w: {"workload_class": "doc-jobs", "ids": [w["dl2"]]},
        _expect(200),
    ),
    ("post", "/api/v1/dead-letters/{dl}/edit-and-replay/", lambda w: {"payload": event(1)}, _expect(202)),
    ("get", "/api/v1/dead-letter-groups/", None, READ),
    ("get", "/api/v1/dead-letter-attention/", None, READ),
    ("get", "/api/v1/replays/", None, READ),
    ("get", "/api/v1/replays/{replay}/", None, READ),
    ("post", "/api/v1/replays/", lambda w: {"workload_class": "doc-jobs", "ids": [w["dl"]]}, _expect(202)),
    (
        "post",
        "/api/v1/replays/",
        lambda w: {"workload_class": "doc-jobs", "error_signature": "sig-unavailable", "dry_run": True},
        _expect(200),
    ),
    ("post", "/api/v1/replays/preview/", lambda w: {"workload_class": "doc-jobs", "ids": [w["dl"]]}, _expect(200)),
    ("post", "/api/v1/replays/{replay}/cancel/", None, _expect(200)),
    ("get", "/api/v1/triage-rules/", None, READ),
    ("get", "/api/v1/triage-rules/{rule}/", None, READ),
    (
        "post",
        "/api/v1/triage-rules/",
        lambda w: {"name": "hold poison", "error_signature": "sig-poison", "action": "hold"},
        _expect(201),
    ),
    ("patch", "/api/v1/triage-rules/{rule}/", lambda w: {"enabled": False}, _expect(200)),
    ("delete", "/api/v1/triage-rules/{rule}/", None, _expect(204)),
    (
        "post",
        "/api/v1/classes/doc-jobs/seek/",
        lambda w: {"time": "2026-01-01T00:00:00Z", "confirm": True, "accept_rerun": True},
        _expect(202),
    ),
    ("post", "/api/v1/classes/doc-jobs/snapshots/", lambda w: {"name": "before-deploy-1"}, _expect(202)),
    ("get", "/api/v1/classes/doc-jobs/snapshots/", None, READ),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "url", "body", "expected"), MATRIX, ids=[f"{m} {u}" for m, u, _b, _e in MATRIX])
def test_permission_matrix(world, caller, method, url, body, expected):
    client = world["clients"][caller]
    kwargs = {"format": "json"}
    if body is not None:
        kwargs["data"] = body(world)
    response = getattr(client, method)(url.format(**world), **kwargs)
    assert response.status_code == expected[caller], (caller, method, url, response.content[:300])
