"""The fleet overview: every class in one table, filters and sorting on the server, a live body
that htmx refreshes every 15 s."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client

from tests.dashboards.conftest import HX
from tests.factories import SchedulePolicyFactory, SloFactory, WorkloadClassFactory


def _slugs(html: str) -> list[str]:
    """Class slugs in table order."""
    return re.findall(r'<span class="slug">([a-z0-9-]+)</span>', html)


def test_it_redirects_anonymous_users_to_login(db):
    response = Client().get("/?team=search")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/%3Fteam%3Dsearch"


def test_an_expired_session_sends_the_whole_tab_to_login_not_the_table(db):
    # A refresh of the table after logout must not swap the login page into the table body.
    headers = {**HX, "HX-Current-URL": "http://testserver/?tier=critical"}
    response = Client().get("/?tier=critical", headers=headers)
    assert response.status_code == 200 and response.content == b""
    assert response["HX-Redirect"] == "/accounts/login/?next=/%3Ftier%3Dcritical"


def test_it_refuses_users_without_a_role(ui_client, outsider):
    for headers in ({}, HX):
        response = ui_client(outsider).get("/", headers=headers)
        assert response.status_code == 403
        assert b"shown-class" not in response.content


@pytest.mark.parametrize("persona", ["viewer", "operator", "admin_user"])
def test_every_role_sees_the_whole_fleet(request, ui_client, persona, demo_fleet):
    response = ui_client(request.getfixturevalue(persona)).get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert sorted(_slugs(html)) == [
        "batch-enrichment",
        "document-processing",
        "indexing-pipeline",
        "policy-evaluation",
    ]
    for slug in _slugs(html):
        assert f'href="/classes/{slug}/"' in html  # each row links to its class


def test_the_page_polls_its_table_body_every_15_seconds(ui_client, viewer, demo_fleet):
    html = ui_client(viewer).get("/?team=search").content.decode()
    body = re.search(r"<tbody id=\"fleet-rows\"[^>]*>", html).group(0)
    assert 'hx-trigger="every 15s"' in body
    assert 'hx-get="/?team=search"' in body  # the refresh keeps the filters
    assert 'hx-swap="outerHTML"' in body


def test_htmx_gets_only_the_table_body(ui_client, viewer, demo_fleet):
    response = ui_client(viewer).get("/?sort=name", headers=HX)
    html = response.content.decode().strip()
    assert response.status_code == 200
    assert html.startswith('<tbody id="fleet-rows"')
    assert "<html" not in html and 'aria-label="Main"' not in html and "<thead" not in html
    assert _slugs(html) == ["policy-evaluation", "batch-enrichment", "document-processing", "indexing-pipeline"]
    assert 'id="fleet-updated" hx-swap-oob="true"' in html  # the "updated at" note follows
    assert "HX-Request" in response["Vary"]


def test_a_history_restore_gets_the_whole_page(ui_client, viewer, demo_fleet):
    response = ui_client(viewer).get("/", headers={**HX, "HX-History-Restore-Request": "true"})
    assert b"<html" in response.content


def test_it_filters_by_team_tier_and_search(ui_client, viewer, demo_fleet):
    client = ui_client(viewer)
    assert _slugs(client.get("/?team=search").content.decode()) == ["indexing-pipeline"]
    assert _slugs(client.get("/?tier=deferrable").content.decode()) == ["batch-enrichment"]
    assert _slugs(client.get("/?q=POLICY").content.decode()) == ["policy-evaluation"]
    assert _slugs(client.get("/?tier=critical&team=search").content.decode()) == []
    # The filtered partial too, so the 15 s refresh never brings back hidden rows.
    assert _slugs(client.get("/?tier=deferrable", headers=HX).content.decode()) == ["batch-enrichment"]


def test_the_team_filter_offers_every_team_and_keeps_the_choice(ui_client, viewer, demo_fleet):
    html = ui_client(viewer).get("/?team=search").content.decode()
    for team in ("docs-platform", "search", "data-eng", "trust-safety"):
        assert f'<option value="{team}"' in html
    assert '<option value="search" selected>' in html
    assert '<label for="id_team">Team</label>' in html and '<label for="id_tier">Tier</label>' in html


def test_unknown_filter_values_are_ignored_not_an_error(ui_client, viewer, demo_fleet):
    response = ui_client(viewer).get("/?team=gone&tier=bogus&sort=drop-table")
    assert response.status_code == 200
    assert len(_slugs(response.content.decode())) == 4


def test_it_sorts_on_the_server_both_ways(ui_client, viewer, demo_fleet):
    client = ui_client(viewer)
    by_name = _slugs(client.get("/?sort=name").content.decode())
    # By display name: "Async policy evaluation" comes first.
    assert by_name == ["policy-evaluation", "batch-enrichment", "document-processing", "indexing-pipeline"]
    assert _slugs(client.get("/?sort=-name").content.decode()) == by_name[::-1]
    by_tier = _slugs(client.get("/?sort=tier").content.decode())
    assert by_tier[0] == "policy-evaluation" and by_tier[-1] == "batch-enrichment"  # critical first


def test_sort_headers_say_how_the_table_is_sorted_and_toggle(ui_client, viewer, demo_fleet):
    html = ui_client(viewer).get("/?sort=name&team=search").content.decode()
    name_header = re.search(r'<th scope="col" aria-sort="ascending">\s*<a class="sort-link" href="([^"]+)"', html)
    assert name_header, "the sorted column carries aria-sort"
    assert name_header.group(1) == "?sort=-name&amp;team=search"  # a click reverses, filters kept
    assert html.count("aria-sort=") == 1
    assert 'href="?sort=-backlog&amp;team=search"' in html  # numbers sort largest first on first click


def test_live_columns_say_no_data_instead_of_inventing_zeros(ui_client, viewer, demo_fleet):
    html = ui_client(viewer).get("/?q=policy").content.decode()
    body = html[html.index('<tbody id="fleet-rows"') :]
    row = re.search(r"<tr>.*?</tr>", body, re.S).group(0)
    assert "No data" in row  # status
    # Queue age, backlog, p95, budget, alerts, dead letters, instances and cost.
    assert row.count("no data yet</span>") == 8
    assert "/ 10 s" in row  # the queue-age SLO comes from the registry
    assert "no telemetry polled yet" in html


def test_it_shows_the_schedule_window_in_force_now(ui_client, viewer):
    wc = WorkloadClassFactory(slug="nightly-class", min_instances=1, max_instances=9)
    SchedulePolicyFactory(
        workload_class=wc,
        name="nightly",
        start_time="22:00",
        end_time="06:00",
        timezone="UTC",
        min_instances=0,
        max_instances=2,
    )
    client = ui_client(viewer)
    with time_machine.travel(datetime(2026, 3, 4, 23, 0, tzinfo=UTC), tick=False):
        night = client.get("/").content.decode()
    with time_machine.travel(datetime(2026, 3, 4, 12, 0, tzinfo=UTC), tick=False):
        day = client.get("/").content.decode()
    assert '<span class="visually-hidden">bounds </span>0–2 nightly</span>' in night
    assert '<span class="visually-hidden">bounds </span>1–9 baseline</span>' in day


def test_empty_states_explain_what_to_do(ui_client, viewer, demo_fleet):
    client = ui_client(viewer)
    assert "No class matches these filters" in client.get("/?q=nothing-like-this").content.decode()
    from workloads.models import WorkloadClass

    WorkloadClass.objects.all().delete()
    html = client.get("/").content.decode()
    assert "No workload classes yet" in html and "seed_demo" in html


def test_queries_do_not_grow_with_the_number_of_classes(ui_client, viewer, django_assert_num_queries):
    client = ui_client(viewer)

    def add_classes(count):
        for _ in range(count):
            wc = WorkloadClassFactory()
            SloFactory(workload_class=wc, kind="queue_age", percentile=95, threshold_seconds=60)
            SchedulePolicyFactory(workload_class=wc)

    add_classes(2)
    client.get("/")  # warm the session and the role cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get("/")
    add_classes(20)
    with CaptureQueriesContext(connection) as many:
        html = client.get("/").content.decode()
    assert len(_slugs(html)) == 22
    assert len(many.captured_queries) == len(few.captured_queries)


def test_it_only_answers_get(ui_client, viewer):
    assert ui_client(viewer).post("/").status_code == 405
