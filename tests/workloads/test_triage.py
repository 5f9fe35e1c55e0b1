"""Triage rules: matching, replay after a delay (at most N times), discard, hold, rate limits,
priorities, and an audit event for every application."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.workloads.deadletter_helpers import dead_letter_row, event, kit_dead_letter, make_class, waiting
from workloads.models import Action, ActionState, AuditEvent, DeadLetter, DeadLetterStatus, TriageAction, TriageRule
from workloads.providers import get_providers
from workloads.services import actions as engine
from workloads.services import deadletter_mirror as mirror
from workloads.services.triage import triage_rule_create, triage_rule_matches, triage_rules_run


@pytest.fixture
def queue(db):
    return get_providers().queue


@pytest.fixture
def docs(queue):
    return make_class(queue, "doc-jobs", replay_limit=5)


def _rule(operator, **fields):
    values = {
        "name": "retry unavailable",
        "attribute_pattern": "cp-error-type=Unavailable*",
        "action": TriageAction.REPLAY_AFTER_DELAY,
        "delay_seconds": 600,
        "max_replays": 3,
    }
    values.update(fields)
    return triage_rule_create(actor=operator, fields=values)


def test_a_rule_must_match_something_specific(operator):
    with pytest.raises(ValidationError) as invalid:
        triage_rule_create(actor=operator, fields={"name": "all", "action": TriageAction.DISCARD})
    assert "error_signature" in invalid.value.message_dict
    with pytest.raises(ValidationError) as invalid:
        _rule(operator, attribute_pattern="no-equals-sign")
    assert "attribute_pattern" in invalid.value.message_dict


def test_patterns_match_attributes_and_the_mirrors_error_fields(docs, operator):
    unavailable = dead_letter_row(docs, error_type="UnavailableError")
    backstop = dead_letter_row(docs, error_type="MaxDeliveryAttempts", attributes={"tenant": "acme-eu"})
    dead_letter_row(docs, error_type="ValueError")
    assert list(triage_rule_matches(_rule(operator))) == [unavailable]
    by_attribute = _rule(operator, attribute_pattern="tenant=ACME-*")  # case-insensitive glob
    assert list(triage_rule_matches(by_attribute)) == [backstop]
    by_type = _rule(operator, attribute_pattern="cp-error-type=max?eliveryattempts")
    assert list(triage_rule_matches(by_type)) == [backstop]
    dotted = _rule(operator, attribute_pattern="cp-error-type=Unavailable.Error")  # the dot is literal
    assert list(triage_rule_matches(dotted)) == []


def test_replay_unavailable_after_ten_minutes_at_most_three_times(queue, docs, operator):
    """The typical rule, end to end: mirror, triage, the delayed replay, failing again, and stop."""
    rule = _rule(operator)
    kit_dead_letter(queue, docs, event(1), error_type="Unavailable")
    kit_dead_letter(queue, docs, event(2), error_type="ValueError", signature="sig-value")
    for attempt in range(1, 5):
        mirror.dead_letters_sync(now=timezone.now())
        applied = triage_rules_run(now=timezone.now())
        row = DeadLetter.objects.get(error_type="Unavailable")
        if attempt == 4:  # replayed three times: the rule leaves it to a person
            assert applied == {rule.pk: 0} and row.status == DeadLetterStatus.NEW and row.replay_count == 3
            break
        assert applied == {rule.pk: 1}
        action = Action.objects.get(pk=row.replay_action_id)
        assert action.not_before == row.last_seen + timedelta(minutes=10) and action.requested_by is None
        assert engine.action_run(action_id=action.pk) is None  # not before ten minutes
        assert triage_rules_run(now=timezone.now()) == {rule.pk: 0}  # already triaged: not twice
        with time_machine.travel(timezone.now() + timedelta(minutes=11)):
            assert engine.action_run(action_id=action.pk).state == ActionState.SUCCEEDED
            [replayed] = waiting(queue, docs)
        assert replayed.attributes["cp-replay-count"] == str(attempt)
        # It fails again: the worker kit dead-letters the replayed message with its attributes.
        kit_dead_letter(queue, docs, event(1), extra=replayed.attributes)
    assert DeadLetter.objects.get(error_type="ValueError").status == DeadLetterStatus.NEW
    events = AuditEvent.objects.filter(action="triage_rule.replay_after_delay")
    assert events.count() == 3 and {e.actor_label for e in events} == {"system"}
    assert {e.extra["rule_id"] for e in events} == {rule.pk}


def test_discard_and_hold_rules(docs, operator):
    noise = [dead_letter_row(docs, error_signature="sig-noise") for _ in range(2)]
    poison = dead_letter_row(docs, error_signature="sig-poison")
    discard = _rule(operator, attribute_pattern="", error_signature="sig-noise", action=TriageAction.DISCARD)
    hold = _rule(operator, attribute_pattern="", error_signature="sig-poison", action=TriageAction.HOLD)
    now = timezone.now()
    assert triage_rules_run(now=now) == {discard.pk: 2, hold.pk: 1}
    for row in noise:
        row.refresh_from_db()
        assert row.status == DeadLetterStatus.DISCARDED and row.discarded_by_label == f"triage rule {discard.pk}"
    poison.refresh_from_db()
    assert poison.status == DeadLetterStatus.HELD and poison.held_at == now
    discard.refresh_from_db()
    assert discard.last_applied_at == now
    audit = AuditEvent.objects.get(action="triage_rule.discard")
    assert audit.extra["count"] == 2 and sorted(audit.extra["dead_letter_ids"]) == sorted(r.pk for r in noise)
    assert audit.workload_class_slug == "doc-jobs"


def test_the_hourly_rate_limit_holds_across_ticks(docs, operator):
    for _ in range(5):
        dead_letter_row(docs, error_signature="sig-noise")
    rule = _rule(
        operator, attribute_pattern="", error_signature="sig-noise", action=TriageAction.HOLD, rate_limit_per_hour=2
    )
    now = timezone.now()
    assert triage_rules_run(now=now) == {rule.pk: 2}
    assert triage_rules_run(now=now + timedelta(minutes=30)) == {rule.pk: 0}
    assert triage_rules_run(now=now + timedelta(minutes=61)) == {rule.pk: 2}
    assert DeadLetter.objects.filter(status=DeadLetterStatus.HELD).count() == 4


def test_rules_run_by_priority_and_the_first_to_act_wins(docs, operator):
    row = dead_letter_row(docs, error_signature="sig-x")
    later = _rule(operator, name="later", attribute_pattern="", error_signature="sig-x", action="discard", priority=50)
    first = _rule(operator, name="first", attribute_pattern="", error_signature="sig-x", action="hold", priority=10)
    disabled = _rule(operator, attribute_pattern="", error_signature="sig-x", action="discard", priority=1)
    TriageRule.objects.filter(pk=disabled.pk).update(enabled=False)
    assert triage_rules_run(now=timezone.now()) == {first.pk: 1, later.pk: 0}
    row.refresh_from_db()
    assert row.status == DeadLetterStatus.HELD and row.triage_rule == first


def test_one_delayed_replay_per_class_and_tick(queue, operator):
    a, b = make_class(queue, "class-a"), make_class(queue, "class-b")
    now = timezone.now()
    for workload_class in (a, a, b):
        dead_letter_row(workload_class, seen=now - timedelta(minutes=1))
    dead_letter_row(a, seen=now - timedelta(minutes=3))
    rule = _rule(operator)
    rule.attribute_pattern = "cp-error-type=unavailable"
    rule.save()
    assert triage_rules_run(now=now) == {rule.pk: 4}
    actions = {a.workload_class.slug: a for a in Action.objects.filter(kind="replay")}
    assert set(actions) == {"class-a", "class-b"}
    assert actions["class-a"].parameters["filter"]["ids"].__len__() == 3
    # Due once the newest member has waited the delay.
    assert actions["class-a"].not_before == now - timedelta(minutes=1) + timedelta(seconds=600)
