import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workloads.providers.local.fleet import fleet_run


class Command(BaseCommand):
    help = (
        "Run the local worker pools: keep as many worker processes (LOCAL_FLEET_WORKER_COMMAND, by default "
        "`manage.py runworker <class>`) alive per pool as its instance count says. SIGTERM or Ctrl-C stops "
        "the workers cleanly (they finish in-flight work) and exits."
    )

    def add_arguments(self, parser):
        parser.add_argument("--poll", type=float, default=1.0, help="Seconds between passes (default 1).")
        parser.add_argument(
            "--stop-timeout",
            type=float,
            default=30.0,
            help="Seconds a stopping worker gets to finish before it is killed (default 30).",
        )
        parser.add_argument("--database", default="default", help="Database alias of the local provider.")

    def handle(self, *args, **options):
        if settings.CONTROLPLANE_PROVIDER != "local":
            raise CommandError(
                f"runfleet runs the local provider's worker pools; with CONTROLPLANE_PROVIDER="
                f"{settings.CONTROLPLANE_PROVIDER} the workers run in Cloud Run."
            )
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        fleet_run(
            stop=stop,
            using=options["database"],
            poll_seconds=max(0.1, options["poll"]),
            stop_timeout=max(0.0, options["stop_timeout"]),
        )
