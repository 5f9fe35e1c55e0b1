"""The audit log screen: GET filters (actor, action, class, time range) that work without
JavaScript, pagination that keeps them, and each event's before/after diff."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.dashboards.conftest import HX
from workloads.models import AuditEvent


def _actions(html: str) -> list[str]:
    return re.findall(r'<span class="audit-action"><code>([^<]+)</code></span>', html)


def _event(**fields):
    defaults = {"actor_label": "system", "action": "workload_class.update", "occurred_at": datetime.now(UTC)}
    return AuditEvent.objects.create(**{**defaults, **fields})


@pytest.fixture
def trail(db):
    base = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    return [
        _event(actor_label="ada", action="workload_class.update", workload_class_slug="docs", occurred_at=base),
        _event(
            actor_label="otto",
            action="action.scale.request",
            workload_class_slug="docs",
            occurred_at=base + timedelta(hours=1),
        ),
        _event(
            actor_label="otto (token ci)",
            action="action.replay.request",
            workload_class_slug="search",
            occurred_at=base + timedelta(hours=2),
            result="failure",
        ),
        _event(
            actor_label="system",
            action="action.scale.finish",
            workload_class_slug="search",
            occurred_at=base + timedelta(hours=3),
        ),
    ]


def test_everything_newest_first_without_filters(ui_client, viewer, trail):
    html = ui_client(viewer).get("/audit/?end=2026-03-05T00:00").content.decode()
    assert _actions(html) == [e.action for e in reversed(trail)]
    assert "4 events match the filters" in html and '<span class="pill pill-bad">failure</span>' in html


def test_it_filters_by_actor_action_class_and_time(ui_client, viewer, trail):
    client = ui_client(viewer)
    assert _actions(client.get("/audit/?actor=OTTO").content.decode()) == [
        "action.replay.request",
        "action.scale.request",
    ]  # part of the label, any case: a token's actions count as the person's
    assert _actions(client.get("/audit/?action=action.scale").content.decode()) == [
        "action.scale.finish",
        "action.scale.request",
    ]  # a prefix
    assert _actions(client.get("/audit/?workload_class=docs").content.decode()) == [
        "action.scale.request",
        "workload_class.update",
    ]
    window = client.get("/audit/?start=2026-03-04T13:00&end=2026-03-04T15:00").content.decode()
    assert _actions(window) == ["action.replay.request", "action.scale.request"]  # from inclusive, to exclusive
    both = client.get("/audit/?actor=otto&workload_class=search", headers=HX).content.decode()
    assert both.lstrip().startswith('<section id="audit-results"') and _actions(both) == ["action.replay.request"]
    assert "1 event matches the filters" in both


def test_a_backwards_time_range_is_explained(ui_client, viewer, trail):
    html = ui_client(viewer).get("/audit/?start=2026-03-04T13:30&end=2026-03-04T12:00").content.decode()
    assert "“To” must be after “From”." in html
    # The bad bound is ignored, the rest still applies.
    assert {"action.scale.finish", "action.replay.request"} <= set(_actions(html))
    assert "workload_class.update" not in _actions(html)


def test_the_form_works_without_javascript(ui_client, viewer, trail):
    html = ui_client(viewer).get("/audit/?actor=ada").content.decode()
    form = re.search(r'<form class="filters" method="get" action="/audit/"[^>]*>', html).group(0)
    assert 'role="search"' in form
    for name in ("actor", "action", "workload_class", "start", "end"):
        assert f'name="{name}"' in html
    assert 'value="ada"' in html and '<a class="btn btn-quiet" href="/audit/">Clear</a>' in html
    assert '<option value="action.scale"></option>' in html  # suggestions for the action filter


def test_pages_keep_the_filters(ui_client, viewer, db):
    for n in range(53):
        _event(actor_label="bulk", action="workload_class.update", target_repr=f"n{n:02d}")
    _event(actor_label="other")
    client = ui_client(viewer)
    first = client.get("/audit/?actor=bulk").content.decode()
    assert len(_actions(first)) == 50 and "Page 1 of 2" in first
    assert 'href="?actor=bulk&amp;page=2"' in first and 'hx-target="#audit-results"' in first
    second = client.get("/audit/?actor=bulk&page=2").content.decode()
    assert len(_actions(second)) == 3 and "n00" in second


def test_each_event_expands_to_a_readable_diff(ui_client, viewer, admin_user, demo_fleet):
    from workloads.models import WorkloadClass
    from workloads.services.classes import workload_class_update

    wc = WorkloadClass.objects.get(slug="indexing-pipeline")
    workload_class_update(actor=admin_user, workload_class=wc, fields={"max_instances": 31, "description": "new"})
    html = ui_client(viewer).get(f"/audit/?actor={admin_user.username}").content.decode()
    entry = html[html.index('<li id="audit-') :]
    assert "<details" in entry and "<summary" in entry  # expands without JavaScript
    assert re.search(r"<code>max_instances</code></th>\s*<td[^>]*><del>\d+</del></td>\s*<td[^>]*><ins>31</ins>", entry)
    assert "<code>description</code>" in entry and "<ins>new</ins>" in entry
    assert "2 fields" in entry


def test_creations_list_every_field_as_added(ui_client, viewer, demo_fleet):
    html = (
        ui_client(viewer).get("/audit/?action=workload_class.create&workload_class=policy-evaluation").content.decode()
    )
    assert len(_actions(html)) == 1
    assert 'class="diff-added"' in html and 'class="diff-changed"' not in html
    assert "<code>slos[queue_age].threshold_seconds</code>" in html  # nested lists by natural key


def test_queries_do_not_grow_with_history(ui_client, viewer, db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = ui_client(viewer)
    for _ in range(5):
        _event()
    client.get("/audit/")
    with CaptureQueriesContext(connection) as few:
        client.get("/audit/?action=workload_class")
    AuditEvent.objects.bulk_create(AuditEvent(actor_label="bulk", action="workload_class.update") for _ in range(400))
    with CaptureQueriesContext(connection) as many:
        client.get("/audit/?action=workload_class")
    assert len(many.captured_queries) == len(few.captured_queries)
