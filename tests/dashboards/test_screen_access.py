"""Who may open the telemetry, cost, audit, action and schedule screens, full page and htmx
partial alike: anonymous users go to the login page (a whole-tab redirect for htmx), users without
a role get 403, every role from viewer up gets the page."""

import pytest

from tests.dashboards.conftest import HX
from tests.dashboards.helpers import request_steps_action


@pytest.fixture
def demo_fleet(demo_fleet_of_the_module):
    """Seeded once for the module (tests/dashboards/conftest.py): every test here uses it but
    test_unknown_actions_are_404, whose ids and slugs are unknown with or without the fleet."""


# (url, the partial's root element for htmx)
SCREENS = [
    ("/cost/?period=7d", '<section id="cost-report"'),
    ("/audit/?actor=system", '<section id="audit-results"'),
    ("/actions/?state=pending", '<section id="action-rows"'),
    ("/actions/{action}/", '<div id="action-steps"'),
    ("/actions/{action}/progress/", '<section id="action-progress"'),
    ("/schedules/?workload_class=document-processing", '<section id="schedule-grid"'),
]


@pytest.fixture
def action(demo_fleet, operator, steps_handler):
    return request_steps_action(actor=operator, items=["a", "b"])


def _url(template, action):
    return template.format(action=action.pk)


@pytest.mark.parametrize("url,partial", SCREENS)
def test_anonymous_users_are_sent_to_login(ui_client, action, url, partial):
    url = _url(url, action)
    response = ui_client().get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    response = ui_client().get(url, headers={**HX, "HX-Current-URL": f"http://testserver{url}"})
    assert response.status_code == 200 and response["HX-Redirect"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url,partial", SCREENS)
def test_users_without_a_role_get_403(ui_client, outsider, action, url, partial):
    for headers in ({}, HX):
        response = ui_client(outsider).get(_url(url, action), headers=headers)
        assert response.status_code == 403
        assert partial.encode() not in response.content


@pytest.mark.parametrize("url,partial", SCREENS)
@pytest.mark.parametrize("persona", ["viewer", "operator", "admin_user"])
def test_every_role_gets_the_page_and_the_partial(request, ui_client, action, persona, url, partial):
    client = ui_client(request.getfixturevalue(persona))
    url = _url(url, action)
    full = client.get(url, follow=True)
    assert full.status_code == 200
    html = full.content.decode()
    assert "<html" in html and 'aria-label="Main"' in html and partial in html
    fragment = client.get(url, headers=HX)
    assert fragment.status_code == 200
    assert fragment.content.decode().lstrip().startswith(partial)
    assert "<html" not in fragment.content.decode()
    assert "HX-Request" in fragment["Vary"]


@pytest.mark.parametrize("url", ["/cost/", "/audit/", "/actions/", "/schedules/", "/actions/{action}/"])
def test_the_screens_only_answer_get(ui_client, viewer, action, url):
    assert ui_client(viewer).post(_url(url, action)).status_code == 405


def test_unknown_actions_are_404(ui_client, viewer, db):
    client = ui_client(viewer)
    assert client.get("/actions/999999/").status_code == 404
    assert client.get("/actions/999999/progress/", headers=HX).status_code == 404
