"""The permission matrix: every registry endpoint x every kind of caller -> expected status, against
one world built once for the module (tests/shared_rows.py). How tokens and sessions are checked at
the door is tests/api/test_token_authentication.py."""

import pytest

from controlplane.roles import Role
from tests.callers import ANONYMOUS, clients_of, session_of, token_of, user_with_role
from tests.factories import CostRatesFactory, WorkloadClassFactory, class_payload
from tests.shared_rows import shared_rows
from workloads.models import AuditEvent
from workloads.services.tokens import api_token_issue

CALLERS = ["anonymous", "outsider", "viewer", "operator", "admin", "admin_token", "read_token", "ingest_token"]


@pytest.fixture(scope="module")
def shared_world(django_db_setup, django_db_blocker):
    """Objects every endpoint can act on, and how each kind of caller authenticates. Built once for
    the module's tests (tests/shared_rows.py): what a test's request changes (a class deleted, a
    token revoked) is rolled back with the test's own savepoint."""
    with shared_rows(django_db_blocker):
        WorkloadClassFactory(slug="existing-class")
        CostRatesFactory(name="spare-rates")
        CostRatesFactory(name="new-rates-base")
        admin = user_with_role("root-admin", Role.ADMIN)
        token, _raw = api_token_issue(actor=None, user=admin, name="victim")
        audit_id = AuditEvent.objects.first().pk

        callers = {"anonymous": ANONYMOUS}
        for name, role in [
            ("outsider", None),
            ("viewer", Role.VIEWER),
            ("operator", Role.OPERATOR),
            ("admin", Role.ADMIN),
        ]:
            callers[name] = session_of(user_with_role(f"{name}-user", role))
        for name, scopes in [("admin_token", ["*"]), ("read_token", ["read"]), ("ingest_token", ["ingest:*"])]:
            callers[name] = token_of(admin, name, scopes)
        yield {"callers": callers, "token_id": token.pk, "audit_id": audit_id}


@pytest.fixture
def world(shared_world, db):
    """The module's world with a new client per kind of caller (tests/callers.py)."""
    return {**shared_world, "clients": clients_of(shared_world["callers"])}


def _expect(
    anonymous=401, outsider=403, viewer=403, operator=403, admin=200, admin_token=None, read_token=403, ingest_token=403
):
    expected = {
        "anonymous": anonymous,
        "outsider": outsider,
        "viewer": viewer,
        "operator": operator,
        "admin": admin,
        "admin_token": admin if admin_token is None else admin_token,
        "read_token": read_token,
        "ingest_token": ingest_token,
    }
    return expected


READ_BY_VIEWERS = _expect(viewer=200, operator=200, read_token=200)
ADMIN_ONLY_READ = _expect(read_token=200)  # read_token belongs to an admin

MATRIX = [
    ("get", "/api/v1/classes/", None, READ_BY_VIEWERS),
    ("get", "/api/v1/classes/existing-class/", None, READ_BY_VIEWERS),
    ("post", "/api/v1/classes/", lambda w: class_payload(slug="new-class"), _expect(admin=201)),
    ("patch", "/api/v1/classes/existing-class/", lambda w: {"description": "changed"}, _expect()),
    ("put", "/api/v1/classes/existing-class/", lambda w: class_payload(slug="existing-class"), _expect()),
    ("delete", "/api/v1/classes/existing-class/", None, _expect(admin=204)),
    ("get", "/api/v1/cost-rates/", None, READ_BY_VIEWERS),
    ("get", "/api/v1/cost-rates/spare-rates/", None, READ_BY_VIEWERS),
    ("post", "/api/v1/cost-rates/", lambda w: {"name": "fresh-rates", "vcpu_second": "0.00002"}, _expect(admin=201)),
    ("patch", "/api/v1/cost-rates/spare-rates/", lambda w: {"description": "x"}, _expect()),
    ("delete", "/api/v1/cost-rates/spare-rates/", None, _expect(admin=204)),
    ("get", "/api/v1/audit-events/", None, READ_BY_VIEWERS),
    ("get", "/api/v1/audit-events/{audit_id}/", None, READ_BY_VIEWERS),
    ("delete", "/api/v1/audit-events/{audit_id}/", None, _expect(admin=405)),
    ("get", "/api/v1/tokens/", None, ADMIN_ONLY_READ),
    ("get", "/api/v1/tokens/{token_id}/", None, ADMIN_ONLY_READ),
    ("post", "/api/v1/tokens/", lambda w: {"name": "bot", "scopes": ["read"]}, _expect(admin=201)),
    ("delete", "/api/v1/tokens/{token_id}/", None, _expect(admin=204)),
    ("get", "/api/v1/me/", None, READ_BY_VIEWERS),
    ("get", "/api/v1/users/", None, ADMIN_ONLY_READ),
    ("get", "/api/v1/users/viewer-user/", None, ADMIN_ONLY_READ),
    ("get", "/api/v1/users/viewer-user/tokens/", None, ADMIN_ONLY_READ),
    ("post", "/api/v1/users/", lambda w: {"username": "newcomer", "role": "viewer"}, _expect(admin=201)),
    ("patch", "/api/v1/users/viewer-user/", lambda w: {"role": "operator"}, _expect()),
    ("post", "/api/v1/users/root-admin/revoke-tokens/", None, _expect()),
    ("patch", "/api/v1/me/", lambda w: {"time_display": "local"}, _expect(viewer=200, operator=200)),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "url", "body", "expected"), MATRIX, ids=[f"{m} {u}" for m, u, _b, _e in MATRIX])
def test_permission_matrix(world, caller, method, url, body, expected):
    client = world["clients"][caller]
    url = url.format(**world)
    kwargs = {"format": "json"}
    if body is not None:
        kwargs["data"] = body(world)
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == expected[caller], (caller, method, url, response.content[:300])
