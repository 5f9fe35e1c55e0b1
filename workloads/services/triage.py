"""Triage rules: what automation does with new dead letters, and the beat tick that applies them.

Each enabled rule, lowest priority number first, takes the new dead letters it matches that no
rule has acted on since they last arrived, up to what its hourly rate limit has left, and:

- replay_after_delay: schedules one replay action per class for the batch, starting once the
  newest of them has waited `delay_seconds` (the engine's `not_before`), leaving messages already
  replayed `max_replays` times (or past the class's replay limit) to the rules after it or a person;
- discard: marks them discarded (kept for the audit trail);
- hold: marks them held, so only a person replays or discards them.

A message that comes back after a replay is new again and may be triaged again. Every application
is audited with actor "system" and the rule's id.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform

from workloads.models import DeadLetter, DeadLetterStatus, TriageAction, TriageRule, WorkloadClass
from workloads.models.deadletters import glob_regex
from workloads.providers.base import ATTR_ERROR_MESSAGE, ATTR_ERROR_SIGNATURE, ATTR_ERROR_TYPE
from workloads.selectors.deadletters import ANY_STATUS, DeadLetterFilter
from workloads.services.audit import audit_event_record, diff, snapshot
from workloads.services.deadletters import replay_request

logger = logging.getLogger(__name__)

RATE_WINDOW = timedelta(hours=1)
# These attribute names also match the mirror's own error fields, which Pub/Sub's backstop copies
# (they have no cp-error-* attributes) get filled in too.
_FIELD_FOR_ATTRIBUTE = {
    ATTR_ERROR_TYPE: "error_type",
    ATTR_ERROR_MESSAGE: "error_message",
    ATTR_ERROR_SIGNATURE: "error_signature",
}


# --- Rules: create, change, delete --------------------------------------------------------------------
def _clean(rule: TriageRule) -> None:
    rule.full_clean()


@transaction.atomic
def triage_rule_create(*, actor, fields: dict) -> TriageRule:
    rule = TriageRule(**fields, created_by_label=actor.get_username() if actor is not None else "system")
    _clean(rule)
    rule.save()
    audit_event_record(
        actor=actor,
        action="triage_rule.create",
        target=rule,
        changes=diff({}, snapshot(rule)),
        workload_class_slug=rule.workload_class.slug if rule.workload_class_id else "",
    )
    return rule


@transaction.atomic
def triage_rule_update(*, actor, rule: TriageRule, fields: dict) -> TriageRule:
    rule = TriageRule.objects.select_for_update().get(pk=rule.pk)
    before = snapshot(rule)
    for name, value in fields.items():
        setattr(rule, name, value)
    _clean(rule)
    changes = diff(before, snapshot(rule))
    if changes:
        rule.save()
        audit_event_record(
            actor=actor,
            action="triage_rule.update",
            target=rule,
            changes=changes,
            workload_class_slug=rule.workload_class.slug if rule.workload_class_id else "",
        )
    return rule


@transaction.atomic
def triage_rule_delete(*, actor, rule: TriageRule) -> None:
    audit_event_record(
        actor=actor,
        action="triage_rule.delete",
        target=rule,
        changes=diff(snapshot(rule), {}),
        workload_class_slug=rule.workload_class.slug if rule.workload_class_id else "",
    )
    rule.delete()


# --- Matching ------------------------------------------------------------------------------------------
def triage_rule_matches(rule: TriageRule) -> QuerySet[DeadLetter]:
    """Every dead letter the rule's match selects, whatever its status: the dead-letter filter of
    its class and signature, then its attribute pattern."""
    rows = DeadLetterFilter(
        workload_class=rule.workload_class if rule.workload_class_id else None,
        error_signature=rule.error_signature,
        statuses=ANY_STATUS,
    ).queryset()
    pattern = rule.attribute_name_and_glob
    if pattern:
        name, glob = pattern
        regex = glob_regex(glob)
        by_attribute = Q(attribute_match_value__iregex=regex)
        if name in _FIELD_FOR_ATTRIBUTE:
            by_attribute |= Q(**{f"{_FIELD_FOR_ATTRIBUTE[name]}__iregex": regex})
        rows = rows.annotate(attribute_match_value=KeyTextTransform(name, "attributes")).filter(by_attribute)
    return rows


def _untriaged_new(rows: QuerySet[DeadLetter]) -> QuerySet[DeadLetter]:
    untriaged = Q(triaged_at__isnull=True) | Q(triaged_at__lt=F("last_seen"))
    return rows.filter(untriaged, status=DeadLetterStatus.NEW)


# --- The beat tick -------------------------------------------------------------------------------------
def triage_rules_run(*, now: datetime) -> dict[int, int]:
    """Apply every enabled rule once; returns {rule id: dead letters it acted on}."""
    applied = {}
    for rule_id in TriageRule.objects.filter(enabled=True).order_by("priority", "pk").values_list("pk", flat=True):
        try:
            applied[rule_id] = _apply(rule_id, now=now)
        except ValidationError:
            logger.exception("triage rule %s is invalid; skipped", rule_id)
    return applied


@transaction.atomic
def _apply(rule_id: int, *, now: datetime) -> int:
    # Locking the rule serializes two ticks that overlap, so neither exceeds the rate limit.
    rule = TriageRule.objects.select_for_update().filter(pk=rule_id, enabled=True).first()
    if rule is None:
        return 0
    used = DeadLetter.objects.filter(triage_rule=rule, triaged_at__gt=now - RATE_WINDOW).count()
    budget = rule.rate_limit_per_hour - used
    if budget <= 0:
        return 0
    rows = _untriaged_new(triage_rule_matches(rule))
    if rule.action == TriageAction.REPLAY_AFTER_DELAY:
        rows = rows.filter(replay_count__lt=rule.max_replays).filter(replay_count__lt=F("workload_class__replay_limit"))
    chosen = list(
        rows.select_for_update(of=("self",), skip_locked=True)
        .order_by("last_seen", "pk")
        .values_list("pk", "workload_class_id", "last_seen")[:budget]
    )
    if not chosen:
        return 0
    ids = [pk for pk, _class_id, _seen in chosen]
    marks = {"triage_rule": rule, "triaged_at": now}
    replays = []
    if rule.action == TriageAction.DISCARD:
        marks.update(
            status=DeadLetterStatus.DISCARDED,
            discarded_by=None,
            discarded_by_label=f"triage rule {rule.pk}",
            discarded_at=now,
            discard_reason=f"Triage rule {rule.pk} ({rule.name}).",
        )
    elif rule.action == TriageAction.HOLD:
        marks.update(status=DeadLetterStatus.HELD, held_at=now)
    DeadLetter.objects.filter(pk__in=ids).update(**marks)
    if rule.action == TriageAction.REPLAY_AFTER_DELAY:
        by_class: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
        for pk, class_id, seen in chosen:
            by_class[class_id].append((pk, seen))
        for class_id, members in by_class.items():
            workload_class = WorkloadClass.objects.get(pk=class_id)
            # One action for the batch, due once its newest member has waited the delay.
            not_before = max(seen for _pk, seen in members) + timedelta(seconds=rule.delay_seconds)
            action = replay_request(
                actor=None,
                selection=DeadLetterFilter(workload_class=workload_class, ids=tuple(pk for pk, _seen in members)),
                velocity=None,
                name=f"Triage rule {rule.pk} ({rule.name})"[:120],
                reason=f"Triage rule {rule.pk}: replay after {rule.delay_seconds} s, at most {rule.max_replays} times.",
                not_before=not_before,
            )
            DeadLetter.objects.filter(pk__in=[pk for pk, _seen in members]).update(replay_action=action)
            replays.append(action.pk)
    TriageRule.objects.filter(pk=rule.pk).update(last_applied_at=now)
    class_slugs = sorted(set(WorkloadClass.objects.filter(dead_letters__pk__in=ids).values_list("slug", flat=True)))
    audit_event_record(
        actor=None,
        action=f"triage_rule.{rule.action}",
        target=rule,
        target_repr=f"triage rule {rule.name}",
        workload_class_slug=class_slugs[0] if len(class_slugs) == 1 else "",
        extra={
            "rule_id": rule.pk,
            "count": len(ids),
            "dead_letter_ids": ids[:200],
            "classes": class_slugs,
            "replay_action_ids": replays,
        },
    )
    return len(ids)
