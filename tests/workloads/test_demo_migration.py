"""The demo's migration: a legacy Celery workload moving to a local Worker Pool at a 20 % canary,
seeded by `seed_demo` (run by `make run`), idempotently."""

import random

from django.core.management import call_command
from django.utils import timezone

from demo.traffic import DEMO_TRAFFIC, make_event, make_invalid_event
from workloads.domain.payloads import normalize_and_validate
from workloads.models import MigrationPlan, WorkloadClass
from workloads.runtime.registry import get_handler, load_handler_modules
from workloads.selectors.migration import best_candidate, migration_candidates


def test_seed_demo_starts_the_canary_once(db, capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    plan = MigrationPlan.objects.get()
    assert (plan.source.slug, plan.target.slug, plan.phase) == ("legacy-documents", "documents-pool", "canary")
    legacy = WorkloadClass.objects.get(slug="legacy-documents")
    assert legacy.runtime == "celery" and legacy.runtime_resource == "legacy.process_document"
    assert (legacy.route_to.slug, legacy.route_percent) == ("documents-pool", 20)
    assert "migration plan: unchanged" in capsys.readouterr().out
    # The legacy workload is in a plan already: where-to-start does not suggest it again.
    assert best_candidate(migration_candidates(now=timezone.now())) is None


def test_the_legacy_workload_gets_valid_traffic_and_the_pool_a_handler(db):
    call_command("seed_demo")
    assert "legacy-documents" in [t.slug for t in DEMO_TRAFFIC]
    legacy = WorkloadClass.objects.get(slug="legacy-documents")
    rng = random.Random(7)
    assert normalize_and_validate(make_event("legacy-documents", rng, serial=1), legacy.payload_schema).ok
    assert not normalize_and_validate(make_invalid_event("legacy-documents", rng, serial=2), legacy.payload_schema).ok
    load_handler_modules(["demo.handlers"])  # what a worker does at start, whatever ran before this test
    assert get_handler("documents-pool") is get_handler("document-processing")
