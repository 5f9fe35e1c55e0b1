"""The demo's migration: a legacy workload on a real Celery worker (the Procfile's `legacy` line,
demo/legacy.py) moving to a local Worker Pool at a 20 % canary, so the migration screens
show two runtimes side by side within minutes of `make run`.

Idempotent like `seed_demo_fleet`: the classes are created once (then left as they are), and the
plan is created and moved to its canary only when there is none yet.
"""

from __future__ import annotations

import copy

from django.db import transaction

from demo.fleet import DEMO_CLASSES
from demo.legacy import TASK_NAME
from workloads.models import MigrationPlan, WorkloadClass
from workloads.services.actions import action_run
from workloads.services.classes import workload_class_create
from workloads.services.migration import migration_plan_advance, migration_plan_create

LEGACY_SLUG = "legacy-documents"
POOL_SLUG = "documents-pool"


def _document_class(**fields) -> tuple[dict, list, list]:
    base = next(d for d in DEMO_CLASSES if d["fields"]["slug"] == "document-processing")
    definition = copy.deepcopy(base["fields"])
    definition.update(fields)
    return definition, copy.deepcopy(base["slos"]), copy.deepcopy(base["schedules"])


DEMO_MIGRATION_CLASSES = {
    LEGACY_SLUG: dict(
        name="Legacy document conversion",
        description="The documents team's old Celery pipeline, observed through its task events.",
        runtime="celery",
        runtime_resource=TASK_NAME,
        tier="standard",
    ),
    POOL_SLUG: dict(
        name="Document conversion on a Worker Pool",
        description="Where legacy-documents is moving: a local Worker Pool with the same contract.",
        min_instances=1,
        max_instances=4,
    ),
}


def demo_migration_seed(*, actor=None) -> dict[str, str]:
    outcome = {}
    with transaction.atomic():
        for slug, overrides in DEMO_MIGRATION_CLASSES.items():
            if WorkloadClass.objects.filter(slug=slug).exists():
                outcome[slug] = "unchanged"
                continue
            fields, slos, schedules = _document_class(slug=slug, **overrides)
            from workloads.models import CostRates, Environment

            fields["cost_rates"] = CostRates.objects.get(name=fields["cost_rates"])
            # Beside the demo fleet, in 'prod' when it was seeded (demo/fleet.py).
            prod = Environment.objects.filter(slug="prod").first()
            if prod is not None:
                fields["environment"] = prod
            # Provisioned with the rest of the demo fleet by `make run` (manage.py provision).
            workload_class_create(actor=actor, fields=fields, slos=slos, schedules=schedules, provision=False)
            outcome[slug] = "created"
        if MigrationPlan.objects.filter(source__slug=LEGACY_SLUG).exists():
            outcome["migration plan"] = "unchanged"
            return outcome
        plan = migration_plan_create(
            actor=actor,
            name="Move legacy document conversion to a Worker Pool",
            source=WorkloadClass.objects.get(slug=LEGACY_SLUG),
            target=WorkloadClass.objects.get(slug=POOL_SLUG),
            canary_percent=20,
            ramp_percent=50,
            min_outcomes=50,
        )
        decision = migration_plan_advance(plan=plan, to_phase="canary", actor=actor, reason="the demo's canary")
    # The step runs here rather than waiting for a Celery worker: `make run` starts right after.
    action_run(action_id=decision.action_id)
    outcome["migration plan"] = "created, canary at 20 %"
    return outcome
