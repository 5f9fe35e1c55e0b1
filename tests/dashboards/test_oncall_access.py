"""Who may open and use the on-call screens, per role, full page and htmx partial alike: anonymous
users go to the login page, users without a role get 403, viewers read everything but every
change answers them 403, operators act. And CSRF is enforced on the htmx POSTs."""

import pytest
from django.test import Client

from tests.dashboards.conftest import HX
from tests.dashboards.oncall_fixtures import DEFERRABLE_SLUG, DL_SLUG
from workloads.models import Action, AuditEvent


@pytest.fixture
def demo_fleet(demo_fleet_of_the_module):
    """Seeded once for the module (tests/dashboards/conftest.py): every test here uses it but
    test_unknown_objects_are_404, whose ids and slugs are unknown with or without the fleet."""


@pytest.fixture
def oncall(oncall_of_the_module):
    """Built once for the module, like the fleet (tests/dashboards/conftest.py)."""
    return oncall_of_the_module


# (url, the partial's root for htmx, or None for a page without one)
PAGES = [
    ("/dead-letters/?status=all", '<section id="dead-letter-groups"'),
    (f"/dead-letters/messages/?workload_class={DL_SLUG}&signature=sig-timeout", '<section id="dead-letter-messages"'),
    ("/dead-letters/{row}/", None),
    ("/dead-letters/rules/", None),
    ("/incidents/", '<section id="incident-state"'),
    (f"/compare/?a_class={DL_SLUG}&a_start=2026-01-01&a_end=2026-01-07&b_start=2026-01-08&b_end=2026-01-14", None),
]
COMPARE_PARTIAL = '<section id="compare-result"'

OPERATOR_PAGES = ["/dead-letters/rules/new/", "/dead-letters/rules/{rule}/"]

RULE = {
    "name": "x",
    "error_signature": "s",
    "action": "hold",
    "delay_seconds": "600",
    "max_replays": "3",
    "rate_limit_per_hour": "100",
    "priority": "100",
}
# (url, form data): every change the screens make.
POSTS = [
    ("/dead-letters/replay/", {"workload_class": DL_SLUG, "signature": "sig-timeout", "all_matching": "1"}),
    ("/dead-letters/discard/", {"workload_class": DL_SLUG, "signature": "sig-timeout", "all_matching": "1"}),
    ("/dead-letters/{row}/edit-and-replay/", {"payload": "{}"}),
    ("/dead-letters/rules/new/", RULE),
    ("/dead-letters/rules/{rule}/", RULE),
    ("/dead-letters/rules/{rule}/toggle/", {}),
    ("/dead-letters/rules/{rule}/delete/", {}),
    (f"/classes/{DEFERRABLE_SLUG}/pause/", {"reason": "x", "expires_in_minutes": "60"}),
    (f"/classes/{DEFERRABLE_SLUG}/resume/", {}),
    (f"/classes/{DEFERRABLE_SLUG}/pause/extend/", {"expires_in_minutes": "60"}),
    (f"/classes/{DEFERRABLE_SLUG}/scaling/take-over/", {}),
    (f"/classes/{DEFERRABLE_SLUG}/scaling/controller/", {"controller_enabled": "0"}),
    (f"/classes/{DEFERRABLE_SLUG}/seek/", {"to_time": "2026-01-01T10:00"}),
    (f"/classes/{DEFERRABLE_SLUG}/snapshot/", {}),
    ("/incidents/enter/", {"reason": "x", "expires_in_minutes": "60"}),
    ("/incidents/extend/", {"expires_in_minutes": "60"}),
    ("/incidents/exit/", {}),
]


def _url(template: str, oncall) -> str:
    return template.format(row=oncall["rows"][0].pk, rule=oncall["rule"].pk)


@pytest.mark.parametrize("url,partial", PAGES)
def test_anonymous_users_are_sent_to_login(ui_client, oncall, url, partial):
    url = _url(url, oncall)
    response = ui_client().get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    response = ui_client().get(url, headers={**HX, "HX-Current-URL": f"http://testserver{url}"})
    assert response["HX-Redirect"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url,partial", PAGES)
def test_users_without_a_role_get_403(ui_client, outsider, oncall, url, partial):
    for headers in ({}, HX):
        assert ui_client(outsider).get(_url(url, oncall), headers=headers).status_code == 403


@pytest.mark.parametrize("url,partial", PAGES)
@pytest.mark.parametrize("persona", ["viewer", "operator"])
def test_viewers_and_operators_get_the_page_and_the_partial(request, ui_client, oncall, persona, url, partial):
    client = ui_client(request.getfixturevalue(persona))
    url = _url(url, oncall)
    full = client.get(url)
    assert full.status_code == 200
    html = full.content.decode()
    assert "<html" in html and 'aria-label="Main"' in html
    if partial is None:
        return
    assert partial in html
    fragment = client.get(url, headers=HX)
    assert fragment.status_code == 200 and "HX-Request" in fragment["Vary"]
    body = fragment.content.decode()
    assert body.lstrip().startswith(partial) and "<html" not in body


def test_the_comparison_swaps_its_result_in_place(ui_client, viewer, oncall):
    url = _url(PAGES[-1][0], oncall)
    body = ui_client(viewer).get(url, headers=HX).content.decode()
    assert body.lstrip().startswith(COMPARE_PARTIAL) and "<html" not in body


@pytest.mark.parametrize("url", OPERATOR_PAGES)
def test_the_rule_editor_is_for_operators(ui_client, viewer, operator, oncall, url):
    url = _url(url, oncall)
    assert ui_client(viewer).get(url).status_code == 403
    assert ui_client(operator).get(url).status_code == 200


@pytest.mark.parametrize("url,data", POSTS)
def test_changes_are_refused_to_anyone_below_operator(ui_client, viewer, outsider, oncall, url, data):
    url = _url(url, oncall)
    actions, events = Action.objects.count(), AuditEvent.objects.count()
    response = ui_client().post(url, data)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    for user in (outsider, viewer):
        for headers in ({}, HX):
            assert ui_client(user).post(url, data, headers=headers).status_code == 403
    assert (Action.objects.count(), AuditEvent.objects.count()) == (actions, events)  # nothing happened


@pytest.mark.parametrize("url,data", POSTS)
def test_operators_may_use_every_button(ui_client, operator, oncall, url, data):
    response = ui_client(operator).post(_url(url, oncall), data, headers=HX)
    # The panel that replaces the form, or (rule editor, toggle) the page it sends the tab to.
    assert response.status_code in (200, 302), response.content.decode()[:500]


@pytest.mark.parametrize("url", ["/dead-letters/", "/dead-letters/rules/", "/incidents/", "/compare/"])
def test_the_screens_only_read_with_get(ui_client, viewer, oncall, url):
    assert ui_client(viewer).post(url).status_code == 405


@pytest.mark.parametrize("url", ["/dead-letters/replay/", "/incidents/enter/", f"/classes/{DEFERRABLE_SLUG}/pause/"])
def test_the_action_urls_only_take_post(ui_client, operator, oncall, url):
    assert ui_client(operator).get(url).status_code == 405


def test_htmx_posts_need_the_csrf_token(operator, oncall):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    html = client.get("/incidents/").content.decode()
    token = html.split('"x-csrftoken": "')[1].split('"')[0]  # what <body hx-headers> sends with every request
    data = {"reason": "database failover", "expires_in_minutes": "60"}
    refused = client.post("/incidents/enter/", data, headers=HX)
    assert refused.status_code == 403
    accepted = client.post("/incidents/enter/", data, headers={**HX, "X-CSRFToken": token})
    assert accepted.status_code == 200 and "Entering incident mode pauses" in accepted.content.decode()
    pause = {"reason": "deploy", "expires_in_minutes": "60"}
    assert client.post(f"/classes/{DEFERRABLE_SLUG}/pause/", pause, headers=HX).status_code == 403
    replay = {"workload_class": DL_SLUG, "signature": "sig-timeout", "all_matching": "1", "step": "confirm"}
    assert client.post("/dead-letters/replay/", replay, headers=HX).status_code == 403
    assert not Action.objects.exists()


def test_unknown_objects_are_404(ui_client, operator, db):
    client = ui_client(operator)
    assert client.get("/dead-letters/999999/").status_code == 404
    assert client.get("/dead-letters/rules/999999/").status_code == 404
    assert client.post("/dead-letters/999999/edit-and-replay/", {"payload": "{}"}).status_code == 404
    assert client.post("/classes/nope/pause/", {"reason": "x"}).status_code == 404
    assert client.get("/classes/nope/pool/", headers=HX).status_code == 404
