"""The fleet overview: every class in one table, filters and sorting on the server, a live body
that htmx refreshes every 15 s."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client

from tests.dashboards.conftest import HX
from tests.dashboards.helpers import BREACHED_SLUG, HEALTHY_SLUG, SILENT_SLUG, STALE_SLUG
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
    assert 'hx-swap="morph"' in body  # merged into the page: focus and open details survive


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
    row = re.search(r"<tr[^>]*>.*?</tr>", body, re.S).group(0)
    assert "No data" in row and "No metrics received yet." in row  # status, and why
    # Queue age, backlog, p95, budget, alerts, instances and cost; dead letters to triage are the
    # mirror's rows, counted whatever the metrics (0 here is a count, not a missing value).
    assert row.count("no data yet</span>") == 7
    assert "no target yet: the scaling controller sets one" in row  # until the controller first runs
    assert "/ 10 s" in row and "/ 5 s" in row  # the SLO thresholds come from the registry
    assert 'data-col="age"' not in row  # no age before the first sample
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


def _rows(html: str) -> dict[str, str]:
    """Each table row's HTML by class slug."""
    body = html[html.index('<tbody id="fleet-rows"') :]
    return {
        re.search(r'<span class="slug">([a-z0-9-]+)</span>', tr).group(1): tr
        for tr in re.findall(r"<tr[^>]*>.*?</tr>", body, re.S)
    }


def _cell(row: str, column: str) -> str:
    cell = re.search(rf'<td[^>]*data-col="{column}"[^>]*>(.*?)</td>', row, re.S).group(1)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip()


def test_live_values_after_a_poll(ui_client, viewer, polled_fleet):
    rows = _rows(ui_client(viewer).get("/").content.decode())
    healthy = rows[HEALTHY_SLUG]
    assert 'class="status status-ok"' in healthy and "Within every SLO." in healthy
    assert _cell(healthy, "queue_age") == "45 s / 2 min"
    assert _cell(healthy, "backlog") == "1.2k"
    assert _cell(healthy, "p95") == "2.19 s / 60 s"
    assert _cell(healthy, "budget") == "100.0 %"
    assert _cell(healthy, "alerts") == "0"
    # The dead-letter subscription's backlog (3 in this poll) is not what needs triage: the mirror is.
    assert _cell(healthy, "dead_letters").startswith("0 0 dead letters arrived in the last 24 h")
    assert _cell(healthy, "instances").startswith("2 / — no target")
    assert _cell(healthy, "cost").startswith("$")
    assert re.search(r'data-col="age"[^>]*>data \d+(\.\d+)? s old<', healthy)


def test_a_breached_class_is_red_with_its_reason_and_alerts(ui_client, viewer, polled_fleet):
    row = _rows(ui_client(viewer).get("/").content.decode())[BREACHED_SLUG]
    assert 'class="status status-breached"' in row
    assert 'role="tooltip"' in row and "Paging:" in row  # why, on hover and focus
    assert '<span class="status-reason" aria-hidden="true">Paging:' in row  # and in the text
    assert 'tabindex="0" aria-describedby="status-reason-policy-evaluation"' in row
    assert '<span class="count-bad">40 s</span>' in row  # over its 10 s SLO
    assert _cell(row, "budget") == "overspent"
    assert re.match(r"\d+ \d+ paging", _cell(row, "alerts"))


def test_a_stale_class_never_looks_healthy(ui_client, viewer, polled_fleet):
    # Drawn at the poll's instant: on a busy machine (or under pytest-xdist) the page could otherwise
    # be drawn a minute later, when the class has had no new metrics for 41 min.
    with time_machine.travel(polled_fleet, tick=False):
        row = _rows(ui_client(viewer).get("/").content.decode())[STALE_SLUG]
    assert 'class="status status-stale"' in row and 'class="status status-ok"' not in row
    assert "No new metrics for 40 min: the values shown are old." in row
    assert "row-stale" in row  # its last values are greyed out
    # 40 min and a little (the poll covers whole minutes). Three significant digits: within 3 s of
    # the 40th minute the label is a plain "40 min".
    assert re.search(r'class="row-age metric-age-stale"[^>]*>data 4[01](\.\d)? min old<', row)
    assert _cell(row, "backlog") == "5k"  # still shown, as what it was


def test_a_class_never_polled_still_has_no_data_next_to_polled_ones(ui_client, viewer, polled_fleet):
    row = _rows(ui_client(viewer).get("/").content.decode())[SILENT_SLUG]
    assert 'class="status status-no-data"' in row
    assert row.count("no data yet</span>") == 7


def test_sorting_by_live_values_puts_what_needs_attention_first(ui_client, viewer, polled_fleet):
    client = ui_client(viewer)
    assert _slugs(client.get("/").content.decode()) == [BREACHED_SLUG, STALE_SLUG, SILENT_SLUG, HEALTHY_SLUG]
    by_backlog = _slugs(client.get("/?sort=-backlog").content.decode())
    assert by_backlog == [STALE_SLUG, HEALTHY_SLUG, BREACHED_SLUG, SILENT_SLUG]  # no data last


def test_queries_do_not_grow_with_classes_or_history(ui_client, viewer):
    """10 classes with an hour of telemetry, then 30 classes with a day more: the same queries."""
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from tests.workloads.telemetry_doubles import FakeMetrics, installed_metrics
    from workloads.providers.base import MetricKind
    from workloads.services.polling import metrics_poll
    from workloads.services.slo_evaluation import slo_alerts_evaluate

    def add_classes(count):
        for _ in range(count):
            wc = WorkloadClassFactory()
            SloFactory(workload_class=wc, kind="queue_age", percentile=95, threshold_seconds=60)
            SchedulePolicyFactory(workload_class=wc)

    def poll(now, minutes):
        fake = FakeMetrics()
        fake.set(MetricKind.UNDELIVERED_MESSAGES, lambda slug, end: 5.0)
        fake.set(MetricKind.INSTANCE_COUNT, lambda slug, end: 1.0)
        with installed_metrics(fake):
            metrics_poll(now=now, window_minutes=minutes)
        slo_alerts_evaluate(now=now)

    client = ui_client(viewer)
    now = timezone.now()
    add_classes(10)
    poll(now, 60)
    client.get("/")  # warm the session and the role cache
    with CaptureQueriesContext(connection) as few:
        client.get("/")
    add_classes(20)
    poll(now - timedelta(hours=2), 24 * 60)
    poll(now, 60)
    with CaptureQueriesContext(connection) as many:
        html = client.get("/?sort=-backlog").content.decode()
    assert len(_slugs(html)) == 30 and html.count("status-ok") == 30
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_dead_letter_column_counts_what_needs_triage_not_the_drained_subscription(ui_client, viewer, polled_fleet):
    """The sync drains the dead-letter subscription into the mirror, so its backlog reads 0 while
    hundreds need attention: the column, its sort and the navigation count the mirror's new and held."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.workloads.deadletter_helpers import dead_letter_row
    from workloads.models import ClassTelemetry, DeadLetterStatus, WorkloadClass

    healthy = WorkloadClass.objects.get(slug=HEALTHY_SLUG)
    stale = WorkloadClass.objects.get(slug=STALE_SLUG)
    ClassTelemetry.objects.update(dead_letter_backlog=0)
    now = timezone.now()
    for minutes in (5, 10, 130):
        dead_letter_row(healthy, seen=now - timedelta(minutes=minutes))
    dead_letter_row(healthy, status=DeadLetterStatus.HELD, seen=now - timedelta(hours=30))
    dead_letter_row(healthy, status=DeadLetterStatus.REPLAYED, seen=now - timedelta(minutes=1))
    dead_letter_row(healthy, status=DeadLetterStatus.DISCARDED, seen=now - timedelta(minutes=1))
    for _ in range(6):
        dead_letter_row(stale, seen=now - timedelta(hours=3))

    html = ui_client(viewer).get("/?sort=-dead_letters").content.decode()
    rows = _rows(html)
    cell = _cell(rows[HEALTHY_SLUG], "dead_letters")
    # The trend is per clock hour: which of the recent ones fall in the current hour depends on the minute.
    hour = now.replace(minute=0, second=0, microsecond=0)
    this_hour = sum(1 for minutes in (5, 10, 1, 1) if now - timedelta(minutes=minutes) >= hour)
    assert cell.startswith("4 ") and f"5 dead letters arrived in the last 24 h, {this_hour} in the last hour" in cell
    assert (f"+{this_hour} last hour" in cell) == bool(this_hour)
    assert 'title="3 new, 1 held for a person"' in rows[HEALTHY_SLUG]
    assert f'href="/dead-letters/?workload_class={HEALTHY_SLUG}"' in rows[HEALTHY_SLUG]
    assert _cell(rows[STALE_SLUG], "dead_letters").startswith("6 ")
    assert list(rows)[:2] == [STALE_SLUG, HEALTHY_SLUG]  # most to triage first
    nav = re.search(r'<nav class="mainnav".*?</nav>', html, re.S).group(0)
    assert re.search(r'Dead letters<span class="visually-hidden">: 10 dead letters need attention</span>', nav)
    assert re.search(r'<span class="nav-count"[^>]*aria-hidden="true">10</span>', nav)


def test_the_fleet_is_paged_fifty_a_page_and_the_pages_keep_filters_and_sort(ui_client, viewer):
    for n in range(55):
        WorkloadClassFactory(slug=f"paged-{n:02d}", owner_team="paging")
    WorkloadClassFactory(slug="elsewhere", owner_team="other")
    client = ui_client(viewer)
    first = client.get("/?team=paging&sort=name").content.decode()
    assert _slugs(first) == [f"paged-{n:02d}" for n in range(50)]
    assert "55 classes match the filters · showing 1–50" in first
    assert 'href="?team=paging&amp;sort=name&amp;page=2" rel="next"' in first
    # A sort link starts again from the first page.
    second = client.get("/?team=paging&sort=name&page=2").content.decode()
    assert _slugs(second) == [f"paged-{n:02d}" for n in range(50, 55)]
    assert "Page 2 of 2" in second and 'href="?team=paging&amp;sort=-name"' in second
    # The 15 s refresh asks for the page it shows.
    refreshed = client.get("/?team=paging&sort=name&page=2", headers=HX).content.decode()
    assert _slugs(refreshed) == [f"paged-{n:02d}" for n in range(50, 55)]
    assert 'hx-get="/?team=paging&amp;sort=name&amp;page=2"' in second
    # One page of fewer than fifty: no page links.
    assert 'aria-label="Fleet pages"' not in client.get("/?team=other").content.decode()
    assert 'aria-label="Fleet pages"' in first


def test_status_order_puts_what_is_wrong_first_across_pages(ui_client, viewer, polled_fleet, monkeypatch):
    """The demo fleet's breached, stale and silent classes before the healthy one, whichever page."""
    from workloads.selectors import fleet_page

    client = ui_client(viewer)
    everything = _slugs(client.get("/").content.decode())
    assert everything == [BREACHED_SLUG, STALE_SLUG, SILENT_SLUG, HEALTHY_SLUG]
    monkeypatch.setattr(fleet_page, "PAGE_SIZE", 2)
    pages = [_slugs(client.get(f"/?page={n}").content.decode()) for n in (1, 2)]
    assert pages == [everything[:2], everything[2:]]
