from django.core.management.base import BaseCommand

from controlplane import request_context
from demo.fleet import seed_demo_fleet
from demo.migration import demo_migration_seed
from workloads.services.notifications import demo_receiver_seed


class Command(BaseCommand):
    help = (
        "Create (or restore) the demo fleet: four workload classes with SLOs, schedules and cost rates in the 'prod' "
        "environment, a smaller copy of two of them in 'staging', and the "
        "demo receiver channel that every incident is routed to by default."
    )

    def handle(self, *args, **options):
        with request_context.using(via="cli"):
            outcome = seed_demo_fleet(actor=None, staging=True)
            outcome["demo receiver channel"] = demo_receiver_seed(actor=None)
            outcome.update(demo_migration_seed(actor=None))
        for name, result in outcome.items():
            self.stdout.write(f"{name}: {result}")
