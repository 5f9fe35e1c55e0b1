"""The dead-letter table keeps an index for every query on it and no other (each is written again
by every status change, thousands per replay: workloads/migrations/0032_dead_letter_indexes_narrowed.py).
With sequential scans priced out, PostgreSQL still scans the table for a query no index serves."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from tests.workloads.deadletter_helpers import dead_letter_row, make_class
from workloads.models import DeadLetter, DeadLetterStatus, TriageRule
from workloads.providers import get_providers
from workloads.selectors.deadletters import NEEDS_ATTENTION, DeadLetterFilter
from workloads.services.pruning import RESOLVED_DEAD_LETTER_STATUSES
from workloads.services.triage import _untriaged_new, triage_rule_matches


def _queries(docs, rule, user):
    now = timezone.now()
    return {
        "the list, newest first": DeadLetter.objects.order_by("-last_seen", "-id")[:50],
        "a class's new ones": DeadLetterFilter(workload_class=docs).queryset().order_by("-last_seen")[:50],
        "a signature in a time range": DeadLetterFilter(
            workload_class=docs, error_signature="sig-x", seen_after=now - timedelta(hours=1)
        ).queryset(),
        "an idempotency key": DeadLetter.objects.filter(idempotency_key="k-1"),
        "needing attention": DeadLetter.objects.filter(workload_class=docs, status__in=NEEDS_ATTENTION),
        "the last day, every class": DeadLetter.objects.filter(last_seen__gte=now - timedelta(hours=24)),
        "a rule's budget": DeadLetter.objects.filter(triage_rule=rule, triaged_at__gt=now - timedelta(hours=1)),
        "a rule's candidates": _untriaged_new(triage_rule_matches(rule)).order_by("last_seen", "pk")[:10],
        "the mirror's lookup": DeadLetter.objects.filter(workload_class=docs).filter(
            Q(message_id__in=["m1"]) | Q(last_message_id__in=["m1"])
        ),
        "the prune": DeadLetter.objects.filter(status__in=RESOLVED_DEAD_LETTER_STATUSES, last_seen__lt=now),
        "a replay's outcomes": DeadLetter.objects.filter(replay_action_id__in=[1, 2], replayed_at__isnull=False),
        "a class's deletion": DeadLetter.objects.filter(workload_class_id__in=[docs.pk]),
        "a user's deletion (discarded)": DeadLetter.objects.filter(discarded_by_id__in=[user.pk]),
        "a user's deletion (edited)": DeadLetter.objects.filter(edited_by_id__in=[user.pk]),
        "a rule's deletion": DeadLetter.objects.filter(triage_rule_id__in=[rule.pk]),
    }


@pytest.mark.django_db
def test_every_dead_letter_query_has_an_index_and_the_unused_ones_are_gone():
    docs = make_class(get_providers().queue, "idx-docs")
    for _ in range(3):
        dead_letter_row(docs)
    DeadLetter.objects.filter(pk=DeadLetter.objects.first().pk).update(status=DeadLetterStatus.REPLAYED)
    rule = TriageRule.objects.create(name="r", error_signature="sig-x", action="hold")
    user = get_user_model().objects.create(username="idx-user")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        scanned = [
            name
            for name, query in _queries(docs, rule, user).items()
            if "Seq Scan on workloads_deadletter" in query.explain()
        ]
    assert scanned == []
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, DeadLetter._meta.db_table)
    indexes = {name for name, info in constraints.items() if info["index"]}  # besides the key and the unique pair
    dropped = {
        "workloads_deadletter_workload_class_id_4c071e72",
        "workloads_deadletter_triage_rule_id_57b13b35",
        "workloads_deadletter_idempotency_key_7877014d_like",
    }
    assert len(indexes) == 9 and not indexes & dropped  # 12 before
