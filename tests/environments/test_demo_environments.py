"""`make run`'s seed: the demo fleet in 'prod' and a smaller copy in 'staging', each class's
resources in its environment's project, and the copies served by the demo's handlers and traffic."""

import random

from django.core.management import call_command

import demo.handlers  # noqa: F401  (registers the demo handlers)
from demo.fleet import DEMO_SLUGS, STAGING_SLUGS
from demo.traffic import DEMO_TRAFFIC, make_event
from workloads.models import AuditEvent, Environment, WorkloadClass
from workloads.runtime.registry import registered


def test_the_demo_seeds_prod_and_a_smaller_staging(db, settings):
    call_command("seed_demo")
    # The migration demo's classes sit beside the fleet, in prod.
    assert {"legacy-documents", "documents-pool"} <= set(
        WorkloadClass.objects.filter(environment__slug="prod").values_list("slug", flat=True)
    )
    prod, staging = Environment.objects.get(slug="prod"), Environment.objects.get(slug="staging")
    assert staging.projects != prod.projects and staging.monitoring_project == staging.projects[0]
    assert set(DEMO_SLUGS) <= set(prod.workload_classes.values_list("slug", flat=True))
    assert sorted(staging.workload_classes.values_list("slug", flat=True)) == sorted(STAGING_SLUGS)
    for copy in staging.workload_classes.all():
        original = WorkloadClass.objects.get(slug=copy.slug.removesuffix("-staging"))
        assert copy.topic == f"projects/{staging.projects[0]}/topics/{copy.slug}"
        assert copy.max_instances < original.max_instances and not copy.schedules.exists()
        assert copy.slos.count() == original.slos.count()
    assert set(STAGING_SLUGS) <= set(registered())
    traffic = {t.slug for t in DEMO_TRAFFIC}
    assert set(STAGING_SLUGS) <= traffic
    for slug in STAGING_SLUGS:
        assert make_event(slug, random.Random(1), serial=1)  # a payload of its prod class's shape

    events = AuditEvent.objects.count()
    call_command("seed_demo")
    assert AuditEvent.objects.count() == events  # the second run changes nothing


def test_an_upgraded_demo_moves_from_the_default_environment_to_prod(db, settings):
    call_command("seed_demo")
    default = Environment.objects.get_or_create(
        slug=settings.DEFAULT_ENVIRONMENT,
        defaults={
            "name": "Default",
            "projects": [settings.GOOGLE_CLOUD_PROJECT],
            "regions": [settings.GOOGLE_CLOUD_REGION],
            "monitoring_project": settings.GOOGLE_CLOUD_PROJECT,
        },
    )[0]
    WorkloadClass.objects.filter(slug__in=DEMO_SLUGS).update(environment=default)
    call_command("seed_demo")
    assert not default.workload_classes.exists()
    assert set(DEMO_SLUGS) <= set(Environment.objects.get(slug="prod").workload_classes.values_list("slug", flat=True))
