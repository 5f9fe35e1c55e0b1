"""Shared set-up of the on-call screen tests: the demo fleet with dead letters, a triage rule and
worker pools in the local provider."""

import pytest

from tests.workloads.deadletter_helpers import dead_letter_row
from workloads.models import TriageRule, WorkloadClass
from workloads.providers import get_providers
from workloads.providers.specs import pool_spec

DL_SLUG = "document-processing"
DEFERRABLE_SLUG = "batch-enrichment"


@pytest.fixture
def oncall(demo_fleet):
    """Four timeouts and two schema errors of the document class (one past the replay limit), a
    hold rule, and every demo pool at 2 instances (the deferrable one at 3)."""
    wc = WorkloadClass.objects.get(slug=DL_SLUG)
    rows = [dead_letter_row(wc, error_signature="sig-timeout", error_type="Timeout") for _ in range(4)]
    rows.append(dead_letter_row(wc, error_signature="sig-schema", error_type="SchemaError"))
    rows.append(
        dead_letter_row(wc, error_signature="sig-schema", error_type="SchemaError", replay_count=wc.replay_limit)
    )
    rule = TriageRule.objects.create(name="hold timeouts", error_signature="sig-timeout", action="hold")
    for workload_class in WorkloadClass.objects.all():
        get_providers().pools.ensure(
            pool_spec(workload_class), initial_instances=3 if workload_class.slug == DEFERRABLE_SLUG else 2
        )
    return {"class": wc, "rows": rows, "rule": rule, "deferrable": WorkloadClass.objects.get(slug=DEFERRABLE_SLUG)}
