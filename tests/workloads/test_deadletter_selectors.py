"""Read side of triage: groups by signature in a fixed number of queries, and the dead-letter
signatures the worker error budget attributes failures to."""

from datetime import timedelta

from django.utils import timezone

from tests.factories import WorkloadClassFactory
from tests.workloads.deadletter_helpers import dead_letter_row
from workloads.selectors.deadletters import dead_letter_groups
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
