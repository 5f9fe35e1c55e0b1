"""Read side of triage: groups by signature in a fixed number of queries, and the dead-letter
signatures the worker error budget attributes failures to."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import WorkloadClassFactory
from tests.workloads.deadletter_helpers import dead_letter_row
from workloads.errors import ApplicationError
from workloads.selectors.deadletters import DeadLetterFilter, dead_letter_groups, dead_letters_to_act_on
from workloads.selectors.telemetry import dead_letter_error_breakdown


def test_groups_take_two_queries_whatever_their_number(db, django_assert_num_queries):
    classes = [WorkloadClassFactory() for _ in range(3)]
    for n, workload_class in enumerate(classes):
        for signature in range(n + 1):
            dead_letter_row(workload_class, error_signature=f"sig-{signature}")
    with django_assert_num_queries(2):  # the groups (samples as subqueries) and the trend
        groups = dead_letter_groups(now=timezone.now())
    assert len(groups) == 6
    assert {(g.workload_class, g.error_signature) for g in groups} == {
        (c.slug, f"sig-{s}") for n, c in enumerate(classes) for s in range(n + 1)
    }


def test_the_sample_is_the_latest_message_of_the_group(db):
    workload_class = WorkloadClassFactory()
    now = timezone.now()
    dead_letter_row(workload_class, error_message="old wording", seen=now - timedelta(hours=2))
    dead_letter_row(workload_class, error_message="new wording", seen=now - timedelta(minutes=2))
    [group] = dead_letter_groups(now=now)
    assert group.sample_error_message == "new wording" and group.count == 2
    assert group.first_seen == now - timedelta(hours=2) and group.last_seen == now - timedelta(minutes=2)


def test_the_error_budget_breakdown_counts_dead_letters_per_signature(db):
    workload_class = WorkloadClassFactory()
    now = timezone.now()
    for _ in range(3):
        dead_letter_row(workload_class, error_signature="sig-a", error_type="Timeout")
    dead_letter_row(workload_class, error_signature="sig-b", error_type="ValueError")
    dead_letter_row(workload_class, error_signature="sig-c", seen=now - timedelta(days=40))  # outside the window
    consumers = dead_letter_error_breakdown(workload_class=workload_class, start=now - timedelta(days=28), end=now)
    assert [(c.source, c.label, c.events) for c in consumers] == [
        ("dead_letter_signature", "Timeout (sig-a)", 3.0),
        ("dead_letter_signature", "ValueError (sig-b)", 1.0),
    ]


def test_the_rows_a_bulk_action_acts_on(db):
    """`dead_letters_to_act_on`: the filter's rows, of one class, and never an empty filter (the
    replay, the discard, their preview and a replay's run all select through it)."""
    workload_class, other = WorkloadClassFactory(), WorkloadClassFactory()
    wanted = dead_letter_row(workload_class, error_signature="sig-a")
    dead_letter_row(workload_class, error_signature="sig-b")
    dead_letter_row(other, error_signature="sig-a")
    selection = DeadLetterFilter(workload_class=workload_class, error_signature="sig-a")
    assert list(dead_letters_to_act_on(selection)) == [wanted]
    for refused, code in (
        (DeadLetterFilter(error_signature="sig-a"), "no_class"),
        (DeadLetterFilter(workload_class=workload_class), "empty_filter"),
    ):
        with pytest.raises(ApplicationError) as error:
            dead_letters_to_act_on(refused)
        assert (error.value.code, error.value.status) == (code, 400)
