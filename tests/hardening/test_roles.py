"""No escalation: every mutating endpoint, taken from the OpenAPI schema and the URLconf (not typed
in by hand), against every kind of caller. A caller below the endpoint's role gets exactly 401
or 403; a caller at or above it gets past the permission check (whatever the body then earns).

REQUIRED is the table of who may change what; a mutating endpoint missing from it fails
`test_every_mutating_endpoint_has_a_required_role`, so a new endpoint cannot ship unclassified.
The per-feature matrices (tests/api/test_permissions.py, test_incidents_permissions.py,
test_deadletters_permissions.py, test_notifications_permissions.py) check the successful answers
with real bodies. The world is built once for the module (tests/shared_rows.py).
"""

from __future__ import annotations

import pytest
from django.contrib.admin import site as admin_site
from django.urls import URLPattern, get_resolver, reverse
from drf_spectacular.generators import SchemaGenerator

from controlplane.roles import Role
from tests.callers import ANONYMOUS, clients_of, session_of, token_of, user_with_role
from tests.shared_rows import shared_rows
from tests.workloads.deadletter_helpers import dead_letter_row, make_class
from workloads.models import TriageRule
from workloads.providers import get_providers
from workloads.providers.specs import pool_spec
from workloads.services.actions import action_request
from workloads.services.deadletters import DeadLetterFilter, replay_request
from workloads.services.tokens import api_token_issue

INGEST = "ingest"  # sessions need the operator role; tokens need an ingest scope (any role)
DEPLOY = "deploy"  # the same with a deploy scope: CI records deployments
VIEWER, OPERATOR, ADMIN = Role.VIEWER, Role.OPERATOR, Role.ADMIN
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}

REQUIRED: dict[tuple[str, str], Role | str] = {
    ("POST", "/api/v1/actions/{id}/cancel/"): OPERATOR,
    ("POST", "/api/v1/alert-incidents/{id}/acknowledge/"): OPERATOR,
    ("POST", "/api/v1/notification-channels/"): ADMIN,
    ("PUT", "/api/v1/notification-channels/{id}/"): ADMIN,
    ("PATCH", "/api/v1/notification-channels/{id}/"): ADMIN,
    ("DELETE", "/api/v1/notification-channels/{id}/"): ADMIN,
    ("POST", "/api/v1/notification-channels/{id}/test/"): OPERATOR,
    ("POST", "/api/v1/notification-routes/"): ADMIN,
    ("PUT", "/api/v1/notification-routes/{id}/"): ADMIN,
    ("PATCH", "/api/v1/notification-routes/{id}/"): ADMIN,
    ("DELETE", "/api/v1/notification-routes/{id}/"): ADMIN,
    ("POST", "/api/v1/silences/"): OPERATOR,
    ("POST", "/api/v1/silences/{id}/end/"): OPERATOR,
    ("POST", "/api/v1/silences/preview/"): OPERATOR,
    ("POST", "/api/v1/classes/"): ADMIN,
    ("PUT", "/api/v1/classes/{slug}/"): ADMIN,
    ("PATCH", "/api/v1/classes/{slug}/"): ADMIN,
    ("DELETE", "/api/v1/classes/{slug}/"): ADMIN,
    ("POST", "/api/v1/classes/{slug}/events/"): INGEST,
    ("POST", "/api/v1/classes/{slug}/pause/"): OPERATOR,
    ("PATCH", "/api/v1/classes/{slug}/pause/"): OPERATOR,
    ("DELETE", "/api/v1/classes/{slug}/pause/"): OPERATOR,
    ("PATCH", "/api/v1/classes/{slug}/scaling/"): OPERATOR,
    ("POST", "/api/v1/classes/{slug}/scaling/take-over/"): OPERATOR,
    ("POST", "/api/v1/classes/{slug}/seek/"): OPERATOR,
    ("POST", "/api/v1/classes/{slug}/control-signals/"): OPERATOR,
    ("POST", "/api/v1/classes/{slug}/backfill/"): OPERATOR,
    ("POST", "/api/v1/classes/{slug}/control-signals/{id}/ack/"): OPERATOR,
    ("POST", "/api/v1/migration-plans/"): ADMIN,
    ("POST", "/api/v1/migration-plans/{id}/advance/"): OPERATOR,
    ("POST", "/api/v1/migration-plans/{id}/rollback/"): OPERATOR,
    ("POST", "/api/v1/classes/{slug}/snapshots/"): OPERATOR,
    ("POST", "/api/v1/environments/"): ADMIN,
    ("PUT", "/api/v1/environments/{slug}/"): ADMIN,
    ("PATCH", "/api/v1/environments/{slug}/"): ADMIN,
    ("DELETE", "/api/v1/environments/{slug}/"): ADMIN,
    ("POST", "/api/v1/cost-rates/"): ADMIN,
    ("PUT", "/api/v1/cost-rates/{name}/"): ADMIN,
    ("PATCH", "/api/v1/cost-rates/{name}/"): ADMIN,
    ("DELETE", "/api/v1/cost-rates/{name}/"): ADMIN,
    ("POST", "/api/v1/dead-letters/{id}/edit-and-replay/"): OPERATOR,
    ("POST", "/api/v1/dead-letters/discard/"): OPERATOR,
    ("POST", "/api/v1/incident-mode/"): OPERATOR,
    ("PATCH", "/api/v1/incident-mode/"): OPERATOR,
    ("DELETE", "/api/v1/incident-mode/"): OPERATOR,
    ("POST", "/api/v1/replays/"): OPERATOR,
    ("POST", "/api/v1/replays/{id}/cancel/"): OPERATOR,
    ("POST", "/api/v1/replays/preview/"): OPERATOR,
    ("POST", "/api/v1/tokens/"): ADMIN,
    ("DELETE", "/api/v1/tokens/{id}/"): ADMIN,
    ("POST", "/api/v1/triage-rules/"): OPERATOR,
    ("PUT", "/api/v1/triage-rules/{id}/"): OPERATOR,
    ("PATCH", "/api/v1/triage-rules/{id}/"): OPERATOR,
    ("DELETE", "/api/v1/triage-rules/{id}/"): OPERATOR,
    ("POST", "/api/v1/users/"): ADMIN,
    ("PATCH", "/api/v1/users/{username}/"): ADMIN,
    ("PATCH", "/api/v1/me/"): VIEWER,  # one's own clock for the screens
    ("POST", "/api/v1/users/{username}/revoke-tokens/"): ADMIN,
    ("POST", "/api/v1/classes/{slug}/provision/"): ADMIN,
    # The browser's buttons (URL names; every other dashboards route is GET-only, see below).
    ("POST", "dashboards:action-cancel"): OPERATOR,
    ("POST", "dashboards:incident-enter"): OPERATOR,
    ("POST", "dashboards:incident-extend"): OPERATOR,
    ("POST", "dashboards:incident-exit"): OPERATOR,
    ("POST", "dashboards:class-pause"): OPERATOR,
    ("POST", "dashboards:class-override"): OPERATOR,
    ("POST", "dashboards:class-resume"): OPERATOR,
    ("POST", "dashboards:class-pause-extend"): OPERATOR,
    ("POST", "dashboards:class-take-over"): OPERATOR,
    ("POST", "dashboards:class-controller"): OPERATOR,
    ("POST", "dashboards:class-seek"): OPERATOR,
    ("POST", "dashboards:class-snapshot"): OPERATOR,
    ("POST", "dashboards:class-control-signal"): OPERATOR,
    ("POST", "dashboards:class-backfill"): OPERATOR,
    ("POST", "dashboards:migration-create"): ADMIN,
    ("POST", "dashboards:migration-advance"): OPERATOR,
    ("POST", "dashboards:migration-rollback"): OPERATOR,
    ("POST", "dashboards:dead-letter-replay"): OPERATOR,
    ("POST", "dashboards:dead-letter-discard"): OPERATOR,
    ("POST", "dashboards:dead-letter-edit-replay"): OPERATOR,
    ("POST", "dashboards:triage-rule-new"): OPERATOR,
    ("POST", "dashboards:triage-rule-edit"): OPERATOR,
    ("POST", "dashboards:triage-rule-toggle"): OPERATOR,
    ("POST", "dashboards:triage-rule-delete"): OPERATOR,
    ("POST", "dashboards:alert-incident-acknowledge"): OPERATOR,
    ("POST", "dashboards:alert-silences"): OPERATOR,
    ("POST", "dashboards:alert-silence-end"): OPERATOR,
    ("POST", "dashboards:alert-channels"): ADMIN,
    ("POST", "dashboards:alert-channel-test"): OPERATOR,
    ("POST", "dashboards:alert-routes"): ADMIN,
    ("POST", "/api/v1/classes/{slug}/deployments/"): DEPLOY,
    ("POST", "dashboards:class-deployment-record"): OPERATOR,
    ("POST", "dashboards:time-display"): VIEWER,
    ("POST", "dashboards:users"): ADMIN,
    ("POST", "dashboards:user-role"): ADMIN,
    ("POST", "dashboards:user-environment-role"): ADMIN,
    ("POST", "dashboards:user-active"): ADMIN,
    ("POST", "dashboards:user-tokens-revoke"): ADMIN,
    ("POST", "dashboards:user-token-revoke"): ADMIN,
    ("POST", "dashboards:class-delete"): ADMIN,
    ("POST", "dashboards:class-edit"): ADMIN,
}
# The spellings without the trailing slash that round 1 published (deprecated, workloads/api/urls.py)
# need what their twins need.
OLD_SPELLINGS = {
    "/api/v1/classes/{slug}/events",
    "/api/v1/classes/{slug}/pause",
    "/api/v1/classes/{slug}/scaling",
    "/api/v1/classes/{slug}/scaling/take-over",
    "/api/v1/incident-mode",
}
REQUIRED |= {(method, path[:-1]): role for (method, path), role in REQUIRED.items() if path[:-1] in OLD_SPELLINGS}
# Who is calling: (session role or None for no role, token scopes or None for a session).
CALLERS = {
    "anonymous": None,
    "outsider": (None, None),
    "viewer": (Role.VIEWER, None),
    "operator": (Role.OPERATOR, None),
    "admin": (Role.ADMIN, None),
    "viewer_token": (Role.VIEWER, ["*"]),
    "admin_read_token": (Role.ADMIN, ["read"]),
    "admin_ingest_token": (Role.ADMIN, ["ingest:*"]),
}


def _api_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method.upper() in MUTATING
    }


def _ui_routes() -> dict[str, URLPattern]:
    resolver = get_resolver()
    [dashboards] = [p for p in resolver.url_patterns if getattr(p, "namespace", None) == "dashboards"]
    return {f"dashboards:{p.name}": p for p in dashboards.url_patterns}


def _ui_url(name: str, pattern: URLPattern, ids: dict[str, int] | None = None) -> str:
    ids = ids or {}
    kwargs = {}
    for key in pattern.pattern.converters:
        if key == "action_id":
            kwargs[key] = action_request(kind="pause", actor=None, target="sec-class", enqueue=False).pk
        elif key == "pk":
            kwargs[key] = ids.get("triage-rule" if "triage-rule" in name else "dead-letter", 0)
        elif key == "token_id":
            kwargs[key] = ids.get("token", 0)
        elif key == "username":
            kwargs[key] = "token-owner"
        else:
            kwargs[key] = "sec-class"
    return reverse(name, kwargs=kwargs)


def test_every_mutating_endpoint_has_a_required_role(world):
    # A page takes POSTs unless it answers 405 (require_GET); ask as an admin, who may do anything.
    admin = world["clients"]["admin"]
    ui_posts = {
        ("POST", name)
        for name, pattern in _ui_routes().items()
        if admin.post(_ui_url(name, pattern, world["ui_ids"])).status_code != 405
    }
    assert ui_posts, "no dashboard route takes POSTs: the probe is broken"
    assert _api_operations() | ui_posts == set(REQUIRED)


def _allowed(required: Role | str, caller: str, *, page: bool = False) -> bool:
    if CALLERS[caller] is None:
        return False
    role, scopes = CALLERS[caller]
    if page and scopes is not None:
        return False
    role = role or Role.NONE
    if required in (INGEST, DEPLOY):
        return role >= Role.OPERATOR if scopes is None else any(s in ("*", f"{required}:*") for s in scopes)
    if scopes is not None and "*" not in scopes:
        return False  # read and ingest tokens change nothing else
    return role >= required


@pytest.fixture(scope="module")
def shared_world(django_db_setup, django_db_blocker):
    """A class with its pool, a dead letter, a replay of it, a triage rule, a token to revoke, and how
    each kind of caller authenticates. Built once for the module's tests (tests/shared_rows.py):
    what the allowed callers' requests change is rolled back with the test's own savepoint."""
    with shared_rows(django_db_blocker):
        queue = get_providers().queue
        docs = make_class(queue, "sec-class", tier="deferrable")
        docs.cost_rates.name = "sec-rates"
        docs.cost_rates.save()
        get_providers().pools.ensure(pool_spec(docs), initial_instances=1)
        letter = dead_letter_row(docs)
        replay = replay_request(actor=None, selection=DeadLetterFilter(workload_class=docs, ids=(letter.pk,)))
        rule = TriageRule.objects.create(name="noise", error_signature="sig-noise", action="hold")
        owner = user_with_role("token-owner", Role.ADMIN)
        victim, _ = api_token_issue(actor=None, user=owner, name="victim")
        ids = {
            "/api/v1/actions/": replay.pk,
            "/api/v1/dead-letters/": letter.pk,
            "/api/v1/replays/": replay.pk,
            "/api/v1/tokens/": victim.pk,
            "/api/v1/triage-rules/": rule.pk,
        }
        callers = {}
        for caller, spec in CALLERS.items():
            if spec is None:
                callers[caller] = ANONYMOUS
                continue
            role, scopes = spec
            user = user_with_role(f"{caller}-user", role)
            callers[caller] = session_of(user) if scopes is None else token_of(user, caller, scopes)
        ui_ids = {"dead-letter": letter.pk, "triage-rule": rule.pk, "token": victim.pk}
        yield {"callers": callers, "ids": ids, "ui_ids": ui_ids}


@pytest.fixture
def world(shared_world, db):
    """The module's world with a new client per kind of caller (tests/callers.py)."""
    return {**shared_world, "clients": clients_of(shared_world["callers"])}


def _url(route: str, ids: dict[str, int], ui_ids: dict[str, int] | None = None) -> str:
    if route.startswith("dashboards:"):
        return _ui_url(route, _ui_routes()[route], ui_ids)
    prefix = next((p for p in ids if route.startswith(p)), None)
    return route.format(slug="sec-class", name="sec-rates", username="token-owner", id=ids.get(prefix, 0))


def _callers_in_order(required, *, page: bool) -> list[str]:
    # Refused callers first (they change nothing), then the allowed ones from the lowest role up.
    order = list(CALLERS)
    return sorted(order, key=lambda c: (_allowed(required, c, page=page), order.index(c)))


@pytest.mark.parametrize(("method", "route"), sorted(REQUIRED), ids=[f"{m} {r}" for m, r in sorted(REQUIRED)])
def test_no_caller_below_the_required_role_gets_through(world, method, route):
    required = REQUIRED[(method, route)]
    url = _url(route, world["ids"], world["ui_ids"])
    page = route.startswith("dashboards:")
    for caller in _callers_in_order(required, page=page):
        client = world["clients"][caller]
        response = getattr(client, method.lower())(url, {}, format="json")
        status = response.status_code
        if _allowed(required, caller, page=page):
            assert status not in (401, 403) and status < 500, (caller, status, response.content[:300])
        elif page and (caller == "anonymous" or CALLERS[caller][1] is not None):
            # Pages know sessions only: with a bearer token the browser is not logged in.
            assert status == 302 and response["Location"].startswith("/accounts/login/"), (caller, status)
        else:
            assert status == (401 if caller == "anonymous" else 403), (caller, status, response.content[:300])


def test_the_admin_site_is_for_admins_only(world):
    """Every admin page of every registered model, read or write, sends anyone below admin to log in."""
    urls = ["/admin/"]
    for model in admin_site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        urls += [
            reverse(f"admin:{info[0]}_{info[1]}_changelist"),
            reverse(f"admin:{info[0]}_{info[1]}_add"),
            reverse(f"admin:{info[0]}_{info[1]}_change", args=[1]),
            reverse(f"admin:{info[0]}_{info[1]}_delete", args=[1]),
        ]
    for caller in ("anonymous", "outsider", "viewer", "operator", "viewer_token"):
        client = world["clients"][caller]
        for url in urls:
            response = client.post(url, {})
            assert response.status_code == 302 and "/login/" in response["Location"], (caller, url)
    # An admin reaches the pages themselves (the redirect is not for everyone).
    assert all(world["clients"]["admin"].get(url).status_code == 200 for url in urls[:3])
