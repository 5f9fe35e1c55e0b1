from django.core.management.base import BaseCommand

from controlplane import request_context
from workloads.services.demo import seed_demo_fleet


class Command(BaseCommand):
    help = "Create (or restore) the demo fleet: four workload classes with SLOs, schedules and cost rates."

    def handle(self, *args, **options):
        with request_context.using(via="cli"):
            outcome = seed_demo_fleet(actor=None)
        for name, result in outcome.items():
            self.stdout.write(f"{name}: {result}")
