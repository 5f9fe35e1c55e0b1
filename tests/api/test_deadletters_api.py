"""The dead-letter, replay, triage-rule, seek and snapshot endpoints (local provider): what each
returns. Who may call each is tests/api/test_deadletters_permissions.py."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.workloads.deadletter_helpers import dead_letter_row, event, make_class, waiting
from workloads.models import Action, ActionState, AuditEvent, AuditResult, DeadLetter, DeadLetterStatus
from workloads.providers import get_providers
from workloads.services import actions as engine
from workloads.services.deadletters import DeadLetterFilter, replay_request


@pytest.fixture
def docs(db):
    return make_class(get_providers().queue, "doc-jobs")


def test_the_list_filters_by_class_signature_status_and_time(docs, viewer, client_as):
    other = make_class(get_providers().queue, "other-jobs")
    now = timezone.now()
    recent = dead_letter_row(docs, seen=now - timedelta(minutes=5))
    old = dead_letter_row(docs, seen=now - timedelta(hours=5), status=DeadLetterStatus.HELD)
    noise = dead_letter_row(
        docs, error_signature="sig-noise", status=DeadLetterStatus.DISCARDED, seen=now - timedelta(hours=3)
    )
    dead_letter_row(other)
    client = client_as(viewer)

    def ids(**params):
        return [r["id"] for r in client.get("/api/v1/dead-letters/", params).json()["results"]]

    assert ids(workload_class="doc-jobs") == [recent.pk, noise.pk, old.pk]  # most recently seen first
    assert ids(workload_class="doc-jobs", error_signature="sig-noise") == [noise.pk]
    assert set(ids(workload_class="doc-jobs", status=["held", "discarded"])) == {old.pk, noise.pk}
    assert ids(workload_class="doc-jobs", seen_after=(now - timedelta(hours=1)).isoformat()) == [recent.pk]
    assert ids(workload_class="doc-jobs", seen_before=(now - timedelta(hours=1)).isoformat()) == [noise.pk, old.pk]
    listed = client.get("/api/v1/dead-letters/", {"workload_class": "doc-jobs"}).json()["results"][0]
    assert "payload" not in listed and listed["workload_class"] == "doc-jobs"
    detail = client.get(f"/api/v1/dead-letters/{recent.pk}/").json()
    assert detail["payload"] == recent.payload and detail["attributes"] == recent.attributes


def _hour(moment):
    return moment.replace(minute=0, second=0, microsecond=0)


def test_groups_count_by_signature_with_a_24_hour_trend(docs, viewer, client_as):
    now = timezone.now()
    for minutes in (1, 2, 61):
        dead_letter_row(docs, seen=now - timedelta(minutes=minutes))
    dead_letter_row(docs, seen=now - timedelta(days=3), status=DeadLetterStatus.DISCARDED)
    dead_letter_row(docs, error_signature="sig-rare", error_message="rare thing", seen=now - timedelta(hours=2))
    body = client_as(viewer).get("/api/v1/dead-letter-groups/", {"workload_class": "doc-jobs"}).json()
    groups = {g["error_signature"]: g for g in body["results"]}
    main = groups["sig-unavailable"]
    assert (main["count"], main["new_count"], main["held_count"]) == (4, 3, 0)
    assert main["sample_error_message"] == "backend unavailable" and main["error_type"] == "Unavailable"
    expected = [0] * 24
    for minutes in (1, 2, 61):
        hours_ago = (_hour(now) - _hour(now - timedelta(minutes=minutes))) // timedelta(hours=1)
        expected[23 - hours_ago] += 1
    assert main["trend"] == expected
    assert [g["error_signature"] for g in body["results"]] == ["sig-unavailable", "sig-rare"]
    new_only = client_as(viewer).get("/api/v1/dead-letter-groups/", {"status": "discarded"}).json()
    assert [(g["error_signature"], g["count"]) for g in new_only["results"]] == [("sig-unavailable", 1)]


def test_a_replay_through_the_api_with_preview_dry_run_and_progress(docs, operator, client_as):
    client = client_as(operator)
    rows = [dead_letter_row(docs) for _ in range(3)]
    dead_letter_row(docs, replay_count=3)  # at the class's default limit of 3
    selection = {"workload_class": "doc-jobs", "error_signature": "sig-unavailable"}
    assert client.post("/api/v1/replays/preview/", selection, format="json").json() == {
        "matching": 4,
        "replayable": 3,
        "refused_loop_guard": 1,
        "refused_truncated": 0,
        "refused_discarded": 0,
        "selects_whole_class": True,
        "confirm_count": 3,
        "other_subscriptions": [],  # nothing but the class's workers receives the replay
        "other_subscriptions_error": "",
    }
    dry = client.post("/api/v1/replays/", {**selection, "dry_run": True}, format="json")
    assert dry.status_code == 200 and dry.json()["dry_run"] is True and len(dry.json()["items"]) == 4
    assert not Action.objects.exists()
    body = {**selection, "velocity": 25, "name": "after fix", "confirm_count": 3}
    created = client.post("/api/v1/replays/", body, format="json")
    assert created.status_code == 202, created.content
    replay = created.json()
    assert replay["kind"] == "replay" and replay["name"] == "after fix" and replay["state"] == "pending"
    assert replay["parameters"]["velocity"] == 25
    engine.action_run(action_id=replay["id"], sleep=lambda s: None)
    detail = client.get(f"/api/v1/replays/{replay['id']}/").json()
    assert (detail["state"], detail["progress_done"], detail["progress_failed"], detail["percent_done"]) == (
        "partially_failed",
        3,
        1,
        100,
    )
    assert len(waiting(get_providers().queue, docs)) == 3
    assert all(DeadLetter.objects.get(pk=r.pk).status == "replayed" for r in rows)
    steps = client.get(f"/api/v1/actions/{replay['id']}/steps/", {"state": "failed"}).json()["results"]
    assert "loop guard" in steps[0]["error"]


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"workload_class": "doc-jobs"}, 400, "empty_filter"),
        ({"workload_class": "doc-jobs", "statuses": ["held"]}, 400, "empty_filter"),
        ({"workload_class": "nope", "error_signature": "x"}, 400, "validation_error"),
        ({"workload_class": "doc-jobs", "ids": [1], "error_signature": "x"}, 400, "validation_error"),
        ({"workload_class": "doc-jobs", "ids": [999999]}, 404, "not_found"),
        ({"workload_class": "doc-jobs", "error_signature": "none-such"}, 409, "nothing_to_replay"),
        ({"workload_class": "doc-jobs", "error_signature": "x", "velocity": 5000}, 400, "invalid_velocity"),
        ({"workload_class": "doc-jobs", "error_signature": "x", "typo": 1}, 400, "validation_error"),
    ],
    ids=["empty", "status-only", "unknown-class", "ids-and-filter", "unknown-id", "nothing", "too-fast", "typo"],
)
def test_bad_replay_requests_are_refused_with_a_reason(docs, operator, client_as, body, status, kind):
    dead_letter_row(docs)
    response = client_as(operator).post("/api/v1/replays/", body, format="json")
    assert response.status_code == status and response.json()["type"] == kind, response.content
    assert not Action.objects.exists()


def test_a_replay_refused_by_the_loop_guard_is_audited(docs, operator, viewer, client_as):
    dead_letter_row(docs, replay_count=docs.replay_limit)
    response = client_as(operator).post(
        "/api/v1/replays/", {"workload_class": "doc-jobs", "error_signature": "sig-unavailable"}, format="json"
    )
    assert response.status_code == 409 and response.json()["type"] == "nothing_to_replay"
    event = AuditEvent.objects.get(action="request.refused")
    assert event.result == AuditResult.FAILURE and event.actor_label == operator.username
    assert event.target_repr == "POST /api/v1/replays/" and event.workload_class_slug == "doc-jobs"
    assert event.extra["code"] == "nothing_to_replay" and "1 past the replay limit" in event.extra["reason"]
    # Reads are not audited, refused or not.
    assert client_as(viewer).get("/api/v1/dead-letters/?status=gone").status_code == 400
    assert AuditEvent.objects.filter(action__startswith="request.").count() == 1


def test_cancel_a_replay_through_the_api(docs, operator, client_as):
    row = dead_letter_row(docs)
    replay = replay_request(actor=operator, selection=DeadLetterFilter(workload_class=docs, ids=(row.pk,)))
    response = client_as(operator).post(f"/api/v1/replays/{replay.pk}/cancel/")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert client_as(operator).post(f"/api/v1/replays/{replay.pk}/cancel/").status_code == 409


def test_discard_through_the_api_by_filter(docs, operator, client_as):
    rows = [dead_letter_row(docs) for _ in range(2)]
    response = client_as(operator).post(
        "/api/v1/dead-letters/discard/",
        {
            "workload_class": "doc-jobs",
            "error_signature": "sig-unavailable",
            "reason": "known bad batch",
            "confirm_count": 2,
        },
        format="json",
    )
    assert response.json() == {"discarded": 2}
    assert {DeadLetter.objects.get(pk=r.pk).status for r in rows} == {"discarded"}
    assert AuditEvent.objects.get(action="dead_letter.discard").via == "api"
    empty = client_as(operator).post("/api/v1/dead-letters/discard/", {"workload_class": "doc-jobs"}, format="json")
    assert empty.status_code == 400 and empty.json()["type"] == "empty_filter"


def test_edit_and_replay_through_the_api_reports_field_errors(docs, operator, client_as):
    row = dead_letter_row(docs)
    url = f"/api/v1/dead-letters/{row.pk}/edit-and-replay/"
    bad = client_as(operator).post(url, {"payload": {"tenant_id": "acme", "revision": "two"}}, format="json")
    assert bad.status_code == 400 and bad.json()["type"] == "validation_error"
    assert set(bad.json()["errors"]) == {"payload.document_id", "payload.revision"}
    good = client_as(operator).post(url, {"payload": event(2), "reason": "typo in revision"}, format="json")
    assert good.status_code == 202 and good.json()["kind"] == "replay"
    detail = client_as(operator).get(f"/api/v1/dead-letters/{row.pk}/").json()
    assert detail["edited_payload"] == event(2) and detail["payload"] == row.payload
    assert detail["edited_by_label"] == operator.username


def test_seek_through_the_api_needs_confirmation(docs, operator, client_as):
    client = client_as(operator)
    body = {"time": "2026-01-01T00:00:00Z"}
    refused = client.post("/api/v1/classes/doc-jobs/seek/", body, format="json")
    assert refused.status_code == 400 and refused.json()["type"] == "confirmation_required"
    assert "every message published after 2026-01-01 00:00:00 UTC" in refused.json()["effect"]
    # Months back: past the day deduplication protects, so completed work would run again.
    assert refused.json()["impact"]["unprotected"] is True
    unacknowledged = client.post("/api/v1/classes/doc-jobs/seek/", {**body, "confirm": True}, format="json")
    assert unacknowledged.status_code == 400 and unacknowledged.json()["type"] == "rerun_acknowledgement_required"
    body |= {"confirm": True, "accept_rerun": True}
    accepted = client.post("/api/v1/classes/doc-jobs/seek/", body, format="json")
    assert accepted.status_code == 202 and accepted.json()["kind"] == "seek"
    # The same seek, described again when accepted (the dedup window moved on by the time between).
    seek_sentence = refused.json()["effect"].split(" Deduplication")[0]
    assert accepted.json()["parameters"]["effect"].split(" Deduplication")[0] == seek_sentence
    assert accepted.json()["parameters"]["accept_rerun"] is True
    assert client.post("/api/v1/classes/nope/seek/", body, format="json").status_code == 404


def test_a_snapshot_through_the_api_runs_to_completion(docs, operator, client_as):
    created = client_as(operator).post("/api/v1/classes/doc-jobs/snapshots/", {}, format="json")
    assert created.status_code == 202
    done = engine.action_run(action_id=created.json()["id"])
    assert done.state == ActionState.SUCCEEDED and done.parameters["name"].startswith("before-deploy-doc-jobs-")
    bad = client_as(operator).post("/api/v1/classes/doc-jobs/snapshots/", {"name": "x"}, format="json")
    assert bad.status_code == 400 and bad.json()["type"] == "invalid_snapshot"


def test_triage_rules_through_the_api_are_validated_and_audited(docs, operator, client_as):
    client = client_as(operator)
    everything = client.post("/api/v1/triage-rules/", {"name": "all", "action": "discard"}, format="json")
    assert everything.status_code == 400 and "error_signature" in everything.json()["errors"]
    created = client.post(
        "/api/v1/triage-rules/",
        {
            "name": "retry unavailable",
            "workload_class": "doc-jobs",
            "attribute_pattern": "cp-error-type=Unavailable*",
            "action": "replay_after_delay",
            "delay_seconds": 600,
            "max_replays": 3,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    rule = created.json()
    assert rule["workload_class"] == "doc-jobs" and rule["created_by_label"] == operator.username
    changed = client.patch(f"/api/v1/triage-rules/{rule['id']}/", {"rate_limit_per_hour": 10}, format="json")
    assert changed.json()["rate_limit_per_hour"] == 10
    update = AuditEvent.objects.get(action="triage_rule.update")
    assert update.changes == {"rate_limit_per_hour": [100, 10]} and update.actor == operator
    assert AuditEvent.objects.filter(action="triage_rule.create").exists()


def test_a_classs_snapshots_are_listed_and_a_seek_to_another_is_refused_at_once(docs, operator, client_as):
    from workloads.providers.specs import queue_spec

    get_providers().queue.create_snapshot(queue_spec(docs), "before-deploy-1")
    client = client_as(operator)
    [snapshot] = client.get("/api/v1/classes/doc-jobs/snapshots/").json()
    assert snapshot["name"] == "before-deploy-1" and snapshot["resource"].endswith("/snapshots/before-deploy-1")
    assert snapshot["expire_time"]
    refused = client.post(
        "/api/v1/classes/doc-jobs/seek/", {"snapshot": "befor-deploy-1", "confirm": True}, format="json"
    )
    assert refused.status_code == 400 and refused.json()["type"] == "unknown_snapshot"
    assert "'befor-deploy-1'" in refused.json()["detail"] and refused.json()["snapshots"] == ["before-deploy-1"]
    assert not Action.objects.filter(kind="seek").exists()
    seek = client.post(
        "/api/v1/classes/doc-jobs/seek/", {"snapshot": "before-deploy-1", "confirm": True}, format="json"
    )
    assert seek.status_code == 202


def test_a_replay_reports_what_its_messages_did_afterwards(docs, operator, client_as, django_assert_max_num_queries):
    """ "Succeeded" is the publish; the outcome follows the messages: one comes back to the
    dead-letter topic (its copy carries cp-replay-of and the sync mirrors it onto the same row)."""
    from tests.workloads.deadletter_helpers import kit_dead_letter
    from workloads.providers.base import ATTR_REPLAY_OF
    from workloads.services.deadletter_mirror import dead_letters_sync

    client = client_as(operator)
    rows = [dead_letter_row(docs) for _ in range(2)]
    created = client.post(
        "/api/v1/replays/", {"workload_class": "doc-jobs", "ids": [r.pk for r in rows]}, format="json"
    )
    assert created.json()["replay_outcome"]["summary"] == "0 published"  # not started yet
    engine.action_run(action_id=created.json()["id"], sleep=lambda s: None)
    detail = client.get(f"/api/v1/actions/{created.json()['id']}/").json()
    assert detail["state"] == "succeeded"
    assert detail["replay_outcome"] == {
        "published": 2,
        "completed": 0,
        "dead_lettered_again": 0,
        "pending": 2,
        "replayed_again": 0,
        "tone": "pending",
        "summary": "2 published, 2 pending",
    }
    waiting(get_providers().queue, docs)  # a worker took them; one fails again
    kit_dead_letter(get_providers().queue, docs, rows[0].payload, extra={ATTR_REPLAY_OF: rows[0].message_id})
    dead_letters_sync(now=timezone.now() + timedelta(seconds=1), workload_classes=[docs])
    assert DeadLetter.objects.get(pk=rows[0].pk).status == DeadLetterStatus.NEW
    for url in (f"/api/v1/replays/{created.json()['id']}/", f"/api/v1/actions/{created.json()['id']}/"):
        outcome = client.get(url).json()["replay_outcome"]
        assert (outcome["dead_lettered_again"], outcome["pending"], outcome["tone"]) == (1, 1, "bad"), url
        assert outcome["summary"] == "2 published, 1 dead-lettered again, 1 pending"
    # A list reads every replay's outcome in one query, whatever the number of replays on the page.
    for _ in range(2):  # up to the class's replay limit of 3
        again = replay_request(actor=None, selection=DeadLetterFilter(workload_class=docs, ids=(rows[1].pk,)))
        engine.action_run(action_id=again.pk, sleep=lambda s: None)
    with django_assert_max_num_queries(6):
        listed = client.get("/api/v1/actions/", {"kind": "replay"}).json()["results"]
    assert [a["replay_outcome"]["summary"] for a in listed][
        -1
    ] == "2 published, 1 dead-lettered again, 1 replayed again later"


def test_what_needs_attention_per_class_and_in_total(docs, viewer, client_as):
    """The overview's column and the navigation's count, through the API: new and held rows of
    the mirror with their 24 h trend, not the dead-letter subscription's drained backlog."""
    other = make_class(get_providers().queue, "index-jobs")
    now = timezone.now()
    dead_letter_row(docs, seen=now - timedelta(minutes=3))
    dead_letter_row(docs, status=DeadLetterStatus.HELD, seen=now - timedelta(days=2))
    dead_letter_row(docs, status=DeadLetterStatus.REPLAYED, seen=now - timedelta(minutes=3))
    for _ in range(3):
        dead_letter_row(other, seen=now - timedelta(minutes=2))
    body = client_as(viewer).get("/api/v1/dead-letter-attention/").json()
    assert body["needs_attention"] == 5
    assert [(c["workload_class"], c["needs_attention"], c["new"], c["held"]) for c in body["classes"]] == [
        ("index-jobs", 3, 3, 0),
        ("doc-jobs", 2, 1, 1),
    ]
    doc_trend = body["classes"][1]["trend"]
    assert len(doc_trend) == 24 and sum(doc_trend) == 2  # the new and the replayed one; the held one is 2 days old
