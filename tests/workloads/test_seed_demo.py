from django.core.management import call_command

from workloads.models import AuditEvent, CostRates, SchedulePolicy, Slo, WorkloadClass
from workloads.services.audit import snapshot
from workloads.services.classes import workload_class_snapshot


def _state():
    return {
        "classes": {c.slug: (workload_class_snapshot(c), c.updated_at) for c in WorkloadClass.objects.all()},
        "rates": {r.name: (snapshot(r), r.updated_at) for r in CostRates.objects.all()},
        "counts": (Slo.objects.count(), SchedulePolicy.objects.count()),
    }


def test_seed_demo_twice_gives_the_same_data(db):
    call_command("seed_demo")
    first = _state()
    events = AuditEvent.objects.count()
    call_command("seed_demo")
    assert _state() == first
    assert AuditEvent.objects.count() == events  # nothing changed, nothing audited


def test_the_demo_fleet_has_the_four_typical_workloads(db):
    call_command("seed_demo")
    tiers = dict(WorkloadClass.objects.values_list("slug", "tier"))
    assert tiers == {
        "document-processing": "standard",
        "indexing-pipeline": "standard",
        "batch-enrichment": "deferrable",
        "policy-evaluation": "critical",
        # The migration demo: a legacy Celery workload and the Worker Pool class it moves to.
        "legacy-documents": "standard",
        "documents-pool": "standard",
        # The staging environment's smaller copies.
        "document-processing-staging": "standard",
        "batch-enrichment-staging": "deferrable",
    }
    for workload_class in WorkloadClass.objects.all():
        assert workload_class.slos.exists()
        # Staging's copies run without schedules (at most two instances, from zero).
        assert workload_class.schedules.exists() == (workload_class.environment.slug != "staging")
        assert workload_class.cost_rates is not None
    assert set(SchedulePolicy.objects.values_list("kind", flat=True)) >= {"nightly", "weekend"}


def test_seed_demo_restores_an_edited_demo_class(db):
    call_command("seed_demo")
    WorkloadClass.objects.filter(slug="indexing-pipeline").update(max_instances=99)
    call_command("seed_demo")
    assert WorkloadClass.objects.get(slug="indexing-pipeline").max_instances == 8
