"""The dead-letter triage screens: groups with counts and trends, filters, messages with payload and
attributes, the replay and discard confirmations with the service's counts, dry run, the action's
progress, edit-and-replay with schema errors inline, and the triage-rule editor."""

import json
import re

import pytest

from tests.dashboards.conftest import HX
from tests.dashboards.oncall_fixtures import DL_SLUG
from tests.workloads.deadletter_helpers import dead_letter_row
from workloads.models import Action, AuditEvent, DeadLetter, TriageRule


@pytest.fixture
def demo_fleet(demo_fleet_of_the_module):
    """Seeded once for the module, whose every test uses it (tests/dashboards/conftest.py)."""


@pytest.fixture
def oncall(oncall_of_the_module):
    """Built once for the module, whose every test uses it (tests/dashboards/conftest.py)."""
    return oncall_of_the_module


REPLAY = "/dead-letters/replay/"
DISCARD = "/dead-letters/discard/"


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


def test_groups_show_counts_new_trend_and_the_latest_sample(ui_client, viewer, oncall):
    html = ui_client(viewer).get("/dead-letters/").content.decode()
    rows = re.findall(r"<tr[^>]*>\s*<td class=\"nowrap\"[^>]*>.*?</tr>", html, re.S)
    assert len(rows) == 2
    timeout = next(r for r in rows if "sig-timeout" in r)
    assert ">Timeout</strong>" in timeout and "backend unavailable" in timeout
    assert '<td class="num" data-label="Count"><strong>4</strong></td>' in timeout
    assert 'class="sparkline"' in timeout and 'aria-label="4 in the last 24 h, at most 4 in one hour"' in timeout
    link = re.search(r'href="(/dead-letters/messages/\?[^"]+)"', timeout).group(1)
    assert "workload_class=document-processing" in link and "signature=sig-timeout" in link


def test_group_filters(ui_client, viewer, oncall):
    client = ui_client(viewer)
    assert "2 groups" in client.get(f"/dead-letters/?workload_class={DL_SLUG}").content.decode()
    assert "1 group " in client.get("/dead-letters/?signature=sig-schema").content.decode()
    DeadLetter.objects.filter(error_signature="sig-schema").update(status="discarded")
    assert "1 group " in client.get("/dead-letters/").content.decode()  # needs attention: new and held
    assert "2 groups" in client.get("/dead-letters/?status=all").content.decode()
    empty = client.get("/dead-letters/?workload_class=policy-evaluation").content.decode()
    assert "No dead letters match these filters" in empty
    assert "2 groups" in client.get("/dead-letters/?status=all&workload_class=bogus").content.decode()  # ignored


def test_groups_cost_the_same_queries_whatever_their_number(ui_client, viewer, oncall):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = ui_client(viewer)
    client.get("/dead-letters/")
    with CaptureQueriesContext(connection) as few:
        client.get("/dead-letters/")
    for n in range(20):
        dead_letter_row(oncall["class"], error_signature=f"sig-{n}")
    with CaptureQueriesContext(connection) as many:
        html = client.get("/dead-letters/").content.decode()
    assert "22 groups" in html
    assert len(many.captured_queries) == len(few.captured_queries)


def test_messages_show_payload_attributes_and_attempts(ui_client, viewer, operator, oncall):
    url = f"/dead-letters/messages/?workload_class={DL_SLUG}&signature=sig-timeout"
    html = ui_client(viewer).get(url).content.decode()
    assert html.count('class="dl-row dl-new"') == 4
    assert "&quot;tenant_id&quot;: &quot;acme&quot;" in html  # indented JSON
    assert "<code>cp-idempotency-key</code>" in html
    assert 'name="ids"' not in html and "Replay selected" not in html  # a viewer only reads
    operator_html = ui_client(operator).get(url).content.decode()
    assert operator_html.count('name="ids"') == 4 and "All 4 matching this filter" in operator_html
    assert "Replay selected…" in operator_html and "Discard selected…" in operator_html


def test_messages_need_a_class_and_page_by_25(ui_client, viewer, oncall):
    client = ui_client(viewer)
    assert "Choose a class" in client.get("/dead-letters/messages/").content.decode()
    for _ in range(26):
        dead_letter_row(oncall["class"], error_signature="sig-many")
    url = f"/dead-letters/messages/?workload_class={DL_SLUG}&signature=sig-many"
    first = client.get(url).content.decode()
    assert first.count('class="dl-row') == 25 and "page 1 of 2" in first
    second = client.get(url + "&page=2", headers=HX).content.decode()
    assert second.count('class="dl-row') == 1


def _selection(oncall, **extra):
    return {"workload_class": DL_SLUG, "status": "open", **extra}


def test_the_replay_confirmation_states_what_will_happen(ui_client, operator, oncall):
    ids = [row.pk for row in oncall["rows"][4:]]  # the two schema errors, one past the replay limit
    html = ui_client(operator).post(REPLAY, {**_selection(oncall), "ids": ids}, headers=HX).content.decode()
    text = _text(html)
    assert "Replay 1 dead letter?" in text
    assert "You selected 2 dead letters of document-processing. 1 will be published again to topic" in text
    assert "at most 50 per second (under a second)" in text
    assert f"1 will be refused by the loop guard: already replayed {oncall['class'].replay_limit} times" in text
    assert f'name="ids" value="{ids[0]}"' in html and 'value="confirm"' in html
    assert not Action.objects.exists()


def test_all_matching_a_filter_and_the_dry_run(ui_client, operator, oncall):
    data = _selection(oncall, signature="sig-timeout", all_matching="1", step="dry_run", velocity="2")
    html = ui_client(operator).post(REPLAY, data, headers=HX).content.decode()
    text = _text(html)
    assert "4 dead letters of document-processing match this filter (signature sig-timeout" in text
    assert "at most 2 per second (≈ 2 s)" in text
    assert "Dry run: nothing was published" in text and text.count("cp-replay-count=1") == 4
    assert not Action.objects.exists()


def test_an_empty_filter_is_refused_by_the_service(ui_client, operator, oncall):
    html = ui_client(operator).post(REPLAY, _selection(oncall, all_matching="1"), headers=HX).content.decode()
    assert "Replay refused" in html and "an empty filter would act on the whole dead-letter queue" in html
    html = ui_client(operator).post(REPLAY, _selection(oncall), headers=HX).content.decode()
    assert "Select dead letters first" in html
    html = ui_client(operator).post(REPLAY, {"ids": [oncall["rows"][0].pk]}, headers=HX).content.decode()
    assert "Choose a class first" in html


def test_confirming_requests_the_replay_and_shows_its_progress(ui_client, operator, oncall):
    data = _selection(oncall, signature="sig-timeout", all_matching="1", step="confirm", velocity="5", name="retry")
    response = ui_client(operator).post(REPLAY, data, headers=HX)
    html = response.content.decode()
    action = Action.objects.get(kind="replay")
    assert action.parameters["velocity"] == 5.0 and action.name == "retry"
    assert action.parameters["filter"]["error_signature"] == "sig-timeout"
    assert action.requested_by == operator
    assert AuditEvent.objects.filter(action="action.replay.request", actor=operator).exists()
    assert f'hx-get="/actions/{action.pk}/progress/" hx-trigger="every 2s"' in html
    assert f"Replay #{action.pk} requested" in html and 'hx-swap-oob="true"' in html  # the toast
    # Without htmx the browser goes to the replay's own page.
    again = _selection(oncall, ids=[oncall["rows"][4].pk], step="confirm")
    plain = ui_client(operator).post(REPLAY, again)
    assert plain.status_code == 302 and re.match(r"/actions/\d+/$", plain["Location"])


def test_a_confirmed_replay_refused_by_the_loop_guard_is_audited(ui_client, operator, oncall):
    data = _selection(oncall, ids=[oncall["rows"][5].pk], step="confirm")
    html = ui_client(operator).post(REPLAY, data, headers=HX).content.decode()
    assert "Nothing to replay" in html and not Action.objects.exists()
    event = AuditEvent.objects.get(action="request.refused")
    assert event.actor == operator and event.result == "failure"
    assert event.extra["code"] == "nothing_to_replay" and event.workload_class_slug == DL_SLUG


def test_a_bad_velocity_is_explained(ui_client, operator, oncall):
    data = _selection(oncall, signature="sig-timeout", all_matching="1", step="confirm", velocity="5000")
    html = ui_client(operator).post(REPLAY, data, headers=HX).content.decode()
    assert "The velocity must be 0.1 to 1000 messages per second." in html
    assert not Action.objects.exists()


def test_discard_confirms_then_marks_the_rows(ui_client, operator, oncall):
    client = ui_client(operator)
    data = _selection(oncall, signature="sig-timeout", all_matching="1")
    review = _text(client.post(DISCARD, data, headers=HX).content.decode())
    assert "Discard 4 dead letters?" in review and "Nothing is published and they will never be replayed" in review
    assert DeadLetter.objects.filter(status="discarded").count() == 0
    response = client.post(DISCARD, {**data, "step": "confirm", "reason": "known bad batch"}, headers=HX)
    assert "Discarded 4 dead letters" in response.content.decode()
    assert "dead-letters-changed" in response["HX-Trigger"]  # the list below refreshes itself
    assert DeadLetter.objects.filter(status="discarded", discard_reason="known bad batch").count() == 4
    event = AuditEvent.objects.get(action="dead_letter.discard")
    assert event.actor == operator and event.extra["count"] == 4


def test_the_message_page_keeps_the_original_and_validates_the_edit(ui_client, operator, oncall):
    row = oncall["rows"][0]
    client = ui_client(operator)
    page = client.get(f"/dead-letters/{row.pk}/").content.decode()
    assert "Original payload" in page and "Validate, save and replay" in page
    url = f"/dead-letters/{row.pk}/edit-and-replay/"
    bad_json = client.post(url, {"payload": "{oops"}, headers=HX).content.decode()
    assert bad_json.lstrip().startswith('<section class="section card" id="edit-panel"')
    assert "This is not JSON" in bad_json
    schema = client.post(url, {"payload": json.dumps({"tenant_id": "acme", "revision": 0})}, headers=HX)
    html = schema.content.decode()
    assert '<ul class="field-errors" id="payload-errors" role="alert">' in html
    assert "payload.revision:" in html and 'aria-invalid="true"' in html
    row.refresh_from_db()
    assert row.edited_payload is None and not Action.objects.exists()


def test_an_accepted_edit_is_stored_beside_the_original_and_replayed(ui_client, operator, oncall):
    row = oncall["rows"][0]
    original = row.payload
    payload = dict(original, content_type="application/pdf")
    html = (
        ui_client(operator)
        .post(f"/dead-letters/{row.pk}/edit-and-replay/", {"payload": json.dumps(payload)}, headers=HX)
        .content.decode()
    )
    row.refresh_from_db()
    action = Action.objects.get(kind="replay")
    assert row.payload == original and row.edited_payload["content_type"] == "application/pdf"
    assert f"replay #{action.pk} requested" in html and 'id="action-progress"' in html


def test_triage_rules_list_create_edit_toggle_delete(ui_client, viewer, operator, oncall):
    listing = ui_client(viewer).get("/dead-letters/rules/").content.decode().split("<main")[1]
    assert "hold timeouts" in listing and "New rule" not in listing and "<form" not in listing
    client = ui_client(operator)
    assert "New rule" in client.get("/dead-letters/rules/").content.decode()
    everything = {"name": "all", "action": "discard", "delay_seconds": 600, "max_replays": 3}
    everything.update(rate_limit_per_hour=100, priority=1)
    refused = client.post("/dead-letters/rules/new/", everything)
    assert refused.status_code == 400 and "a rule must not match all" in refused.content.decode()
    created = client.post("/dead-letters/rules/new/", {**everything, "error_signature": "sig-schema"})
    assert created.status_code == 302 and created["Location"] == "/dead-letters/rules/"
    rule = TriageRule.objects.get(name="all")
    assert rule.created_by_label == operator.username and not rule.enabled  # unticked box
    edit = client.post(f"/dead-letters/rules/{rule.pk}/", {**everything, "error_signature": "sig-x", "enabled": "on"})
    assert edit.status_code == 302
    rule.refresh_from_db()
    assert rule.error_signature == "sig-x" and rule.enabled
    client.post(f"/dead-letters/rules/{rule.pk}/toggle/")
    rule.refresh_from_db()
    assert not rule.enabled
    gone = client.post(f"/dead-letters/rules/{rule.pk}/delete/", headers=HX)
    assert gone["HX-Redirect"] == "/dead-letters/rules/" and not TriageRule.objects.filter(pk=rule.pk).exists()
    actions = set(AuditEvent.objects.filter(actor=operator).values_list("action", flat=True))
    assert {"triage_rule.create", "triage_rule.update", "triage_rule.delete"} <= actions


def test_a_new_rule_can_start_from_a_group(ui_client, operator, oncall):
    html = ui_client(operator).get(f"/dead-letters/rules/new/?workload_class={DL_SLUG}&error_signature=sig-x")
    assert 'value="sig-x"' in html.content.decode()
    assert f'<option value="{DL_SLUG}" selected>' in html.content.decode()
