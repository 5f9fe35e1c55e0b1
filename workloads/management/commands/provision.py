from django.core.management.base import BaseCommand, CommandError

from controlplane import request_context
from workloads.models import WorkloadClass
from workloads.services.provisioning import workload_class_provision


class Command(BaseCommand):
    help = (
        "Create the queue resources and worker pool of each workload class (all, or the slugs given). "
        "Existing resources are kept; differences are reported as drift and changed only with --apply."
    )

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*")
        parser.add_argument("--apply", action="store_true", help="Bring drifted resources in line.")

    def handle(self, *args, slugs, apply, **options):
        classes = WorkloadClass.objects.order_by("slug")
        if slugs:
            classes = classes.filter(slug__in=slugs)
            missing = sorted(set(slugs) - set(classes.values_list("slug", flat=True)))
            if missing:
                raise CommandError(f"No workload class named {', '.join(missing)}.")
        failures = 0
        with request_context.using(via="cli"):
            for workload_class in classes:
                report = workload_class_provision(workload_class=workload_class, actor=None, apply=apply)
                if not report.ok:
                    failures += 1
                    self.stderr.write(f"{report.slug}: {report.error}")
                    continue
                created = f", created {len(report.created)}" if report.created else ""
                pool = (
                    "observed runtime, no pool"
                    if report.pool_instances is None
                    else f"pool at {report.pool_instances} instances"
                )
                self.stdout.write(f"{report.slug}: ready ({pool}{created})")
                for line in report.changed:
                    self.stdout.write(f"  changed: {line}")
                for line in report.drift:
                    # After --apply these are the differences it cannot change (say, message ordering).
                    self.stdout.write(f"  drift: {line}" + ("  (cannot be changed in place)" if apply else ""))
        if failures:
            raise CommandError(f"{failures} class(es) could not be provisioned; see the messages above.")
