"""The actions list and an action's page: filters, pagination, a progress panel that polls itself
every 2 s until the action ends (then htmx's stop-polling status), per-target results with failed
steps first, and Cancel for operators only."""

import re

import pytest
from django.test import Client

from tests.dashboards.conftest import HX
from tests.dashboards.helpers import request_steps_action
from workloads.models import Action, ActionState, AuditEvent
from workloads.services.actions import action_run


@pytest.fixture
def docs(demo_fleet):
    from workloads.models import WorkloadClass

    return WorkloadClass.objects.get(slug="document-processing")


def _ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<a href="/actions/(\d+)/">', html)]


def test_the_list_filters_by_kind_state_and_class(ui_client, viewer, operator, docs, steps_handler):
    done = request_steps_action(actor=operator, items=["a"], workload_class=docs)
    action_run(action_id=done.pk)
    waiting = request_steps_action(actor=operator, items=["a"])
    client = ui_client(viewer)
    assert _ids(client.get("/actions/").content.decode()) == [waiting.pk, done.pk]  # newest first
    assert _ids(client.get("/actions/?state=succeeded").content.decode()) == [done.pk]
    assert _ids(client.get("/actions/?workload_class=document-processing").content.decode()) == [done.pk]
    assert _ids(client.get("/actions/?kind=scale").content.decode()) == []
    assert "No action matches these filters" in client.get("/actions/?kind=scale").content.decode()
    # An unknown value is ignored, not an error page.
    assert _ids(client.get("/actions/?state=exploded").content.decode()) == [waiting.pk, done.pk]


def test_the_list_refreshes_itself_only_while_something_can_move(ui_client, viewer, operator, docs, steps_handler):
    action = request_steps_action(actor=operator, items=["a"], workload_class=docs)
    client = ui_client(viewer)
    assert 'hx-trigger="every 5s"' in client.get("/actions/").content.decode()
    action_run(action_id=action.pk)
    assert 'hx-trigger="every 5s"' not in client.get("/actions/").content.decode()


def test_the_list_is_paginated_with_the_filters_kept(ui_client, viewer, operator, db, steps_handler):
    actions = [request_steps_action(actor=operator, items=["a"]) for _ in range(52)]
    client = ui_client(viewer)
    first = client.get("/actions/?state=pending").content.decode()
    assert len(_ids(first)) == 50 and "Page 1 of 2" in first
    assert 'href="?state=pending&amp;page=2"' in first
    second = client.get("/actions/?state=pending&page=2", headers=HX).content.decode()
    assert _ids(second) == [actions[1].pk, actions[0].pk]


def test_list_queries_do_not_grow_with_the_number_of_actions(ui_client, viewer, operator, docs, steps_handler):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = ui_client(viewer)
    for _ in range(3):
        request_steps_action(actor=operator, items=["a"], workload_class=docs)
    client.get("/actions/")
    with CaptureQueriesContext(connection) as few:
        client.get("/actions/")
    for _ in range(40):
        request_steps_action(actor=operator, items=["a"], workload_class=docs)
    with CaptureQueriesContext(connection) as many:
        client.get("/actions/")
    assert len(many.captured_queries) == len(few.captured_queries)


# --- one action --------------------------------------------------------------------------------------
def _progress(html: str) -> str:
    return html[
        html.index('<section id="action-progress"') : html.index("</section>", html.index('id="action-progress"'))
    ]


def test_a_pending_action_polls_its_progress_every_2_seconds(ui_client, viewer, operator, docs, steps_handler):
    action = request_steps_action(actor=operator, items=["a", "b"], workload_class=docs)
    html = ui_client(viewer).get(f"/actions/{action.pk}/").content.decode()
    opening = re.search(r'<section id="action-progress"[^>]*>', html).group(0)
    assert f'hx-get="/actions/{action.pk}/progress/"' in opening and 'hx-trigger="every 2s"' in opening
    assert "pending" in _progress(html) and "waiting for a worker" in _progress(html)
    poll = ui_client(viewer).get(f"/actions/{action.pk}/progress/", headers=HX)
    assert poll.status_code == 200 and 'hx-trigger="every 2s"' in poll.content.decode()
    assert '"action-progressed"' in poll["HX-Trigger"]  # the steps table refreshes after each poll


def test_the_poll_that_sees_the_end_stops_polling(ui_client, viewer, operator, docs, steps_handler):
    action = request_steps_action(actor=operator, items=["a", "bad-b", "c"], workload_class=docs)
    action_run(action_id=action.pk)
    poll = ui_client(viewer).get(f"/actions/{action.pk}/progress/", headers=HX)
    assert poll.status_code == 286  # htmx stops polling, and swaps in this final panel
    html = poll.content.decode()
    assert "hx-trigger" not in html
    assert "partially failed" in html and 'value="100"' in html
    assert '2 done, <span class="count-bad">1 failed</span> of 3' in html
    assert "bad-b: bad-b refused the change" in html


def test_the_progress_url_without_htmx_goes_to_the_action(ui_client, viewer, operator, db, steps_handler):
    action = request_steps_action(actor=operator, items=["a"])
    response = ui_client(viewer).get(f"/actions/{action.pk}/progress/")
    assert response.status_code == 302 and response["Location"] == f"/actions/{action.pk}/"


def test_steps_are_paginated_with_failed_first_on_request(ui_client, viewer, operator, db, steps_handler):
    items = [f"pool-{n:02d}" for n in range(55)]
    items[52] = "bad-pool"  # on page 2 in position order
    action = request_steps_action(actor=operator, items=items)
    action_run(action_id=action.pk)
    client = ui_client(viewer)
    html = client.get(f"/actions/{action.pk}/").content.decode()
    assert "55 steps · page 1 of 2" in html and html.count('<tr class="step-') == 50
    steps = html[html.index('<div id="action-steps"') :]
    assert "bad-pool" not in steps
    page_two = client.get(f"/actions/{action.pk}/?page=2", headers=HX).content.decode()
    assert page_two.lstrip().startswith('<div id="action-steps"') and page_two.count('<tr class="step-') == 5
    assert "bad-pool refused the change" in page_two
    failed_first = client.get(f"/actions/{action.pk}/?failed_first=1", headers=HX).content.decode()
    first_row = re.search(r'<tr class="step-(\w+)">.*?</tr>', failed_first, re.S)
    assert first_row.group(1) == "failed" and "bad-pool refused the change" in first_row.group(0)
    assert f'hx-get="/actions/{action.pk}/?failed_first=1"' in failed_first  # refreshes keep the choice


def test_detail_queries_do_not_grow_with_the_number_of_steps(ui_client, viewer, operator, db, steps_handler):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = ui_client(viewer)
    small = request_steps_action(actor=operator, items=["a", "b"])
    large = request_steps_action(actor=operator, items=[f"p{n}" for n in range(300)])
    action_run(action_id=small.pk)
    action_run(action_id=large.pk)
    client.get(f"/actions/{small.pk}/")
    with CaptureQueriesContext(connection) as few:
        client.get(f"/actions/{small.pk}/")
    with CaptureQueriesContext(connection) as many:
        client.get(f"/actions/{large.pk}/")
    assert len(many.captured_queries) == len(few.captured_queries)


# --- cancel --------------------------------------------------------------------------------------------
def test_operators_see_cancel_and_viewers_do_not(ui_client, viewer, operator, db, steps_handler):
    action = request_steps_action(actor=operator, items=["a"])
    operator_html = ui_client(operator).get(f"/actions/{action.pk}/").content.decode()
    assert re.search(
        rf'<form class="inline-form progress-cancel" method="post" action="/actions/{action.pk}/cancel/"\s+hx-post=',
        operator_html,
    )
    assert "Cancel action</button>" in operator_html
    assert "Cancel action" not in ui_client(viewer).get(f"/actions/{action.pk}/").content.decode()
    action_run(action_id=action.pk)
    assert "Cancel action" not in ui_client(operator).get(f"/actions/{action.pk}/").content.decode()


def test_viewers_get_403_when_they_post_cancel_anyway(ui_client, viewer, outsider, operator, db, steps_handler):
    action = request_steps_action(actor=operator, items=["a"])
    for user in (viewer, outsider):
        for headers in ({}, HX):
            assert ui_client(user).post(f"/actions/{action.pk}/cancel/", headers=headers).status_code == 403
    response = ui_client().post(f"/actions/{action.pk}/cancel/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    action.refresh_from_db()
    assert action.state == ActionState.PENDING and not action.cancel_requested
    assert ui_client(operator).get(f"/actions/{action.pk}/cancel/").status_code == 405


def test_an_operator_cancels_with_the_csrf_token_htmx_sends(operator, db, steps_handler):
    action = request_steps_action(actor=operator, items=["a", "b"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    html = client.get(f"/actions/{action.pk}/").content.decode()
    # htmx sends the token from <body hx-headers>; without it the POST is refused.
    token = re.search(r'<body hx-headers=\'\{"x-csrftoken": "([^"]+)"\}\'[^>]*>', html).group(1)
    assert client.post(f"/actions/{action.pk}/cancel/", headers=HX).status_code == 403
    response = client.post(f"/actions/{action.pk}/cancel/", headers={**HX, "X-CSRFToken": token})
    assert response.status_code == 286  # not started yet: cancelled at once, so polling stops
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="action-progress"') and "cancelled" in html
    assert 'id="toasts" class="toasts" hx-swap-oob="true"' in html and "cancelled before it started" in html
    action.refresh_from_db()
    assert action.state == ActionState.CANCELLED
    assert AuditEvent.objects.filter(action=f"action.{action.kind}.cancel", actor=operator).count() == 1


def test_cancelling_a_running_action_asks_it_to_stop_and_keeps_polling(ui_client, operator, db, steps_handler):
    action = request_steps_action(actor=operator, items=["a", "b"])
    Action.objects.filter(pk=action.pk).update(planned=True, state=ActionState.RUNNING, progress_total=2)
    response = ui_client(operator).post(f"/actions/{action.pk}/cancel/", headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'hx-trigger="every 2s"' in html and "cancel requested" in html
    assert "Cancelling…</button>" in html and "disabled" in html
    assert "stops after its current step" in html


def test_cancelling_an_ended_action_says_why_not(ui_client, operator, db, steps_handler):
    action = request_steps_action(actor=operator, items=["a"])
    action_run(action_id=action.pk)
    client = ui_client(operator)
    html = client.post(f"/actions/{action.pk}/cancel/", headers=HX).content.decode()
    assert "has already ended (succeeded)" in html and "toast-error" in html
    response = client.post(f"/actions/{action.pk}/cancel/")
    assert response.status_code == 302 and response["Location"] == f"/actions/{action.pk}/"
    action.refresh_from_db()
    assert action.state == ActionState.SUCCEEDED
