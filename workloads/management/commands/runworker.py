import logging
import os
import signal
import socket
import sys
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workloads.domain.health import NO_HANDLER_EXIT_CODE
from workloads.models import WorkloadClass
from workloads.providers import get_providers
from workloads.providers.base import ProviderError
from workloads.runtime.registry import HandlerNotFound, get_handler, load_handler_modules
from workloads.runtime.worker import Worker, worker_config

logger = logging.getLogger("workloads.runtime")


class Command(BaseCommand):
    help = (
        "Run one worker instance of a workload class (the Worker Pool's entrypoint): consume the class's "
        "subscription with its handler at the class's max concurrency until SIGTERM or Ctrl-C, then stop "
        "pulling, let in-flight work finish, hand back what is still running and flush metrics, all within "
        "WORKER_SHUTDOWN_GRACE_SECONDS, and exit 0."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The workload class to work for.")
        parser.add_argument(
            "--report-interval",
            type=float,
            default=None,
            help="Seconds between metric reports (default: WORKER_REPORT_INTERVAL_SECONDS).",
        )

    def handle(self, *args, **options):
        slug = options["slug"]
        workload_class = WorkloadClass.objects.select_related("cost_rates").filter(slug=slug).first()
        if workload_class is None:
            raise CommandError(f"There is no workload class {slug!r}.")
        load_handler_modules()
        try:
            handler = get_handler(slug)
        except HandlerNotFound as exc:
            # A distinct exit code, so the fleet (and the pool's health) tells a missing handler
            # from a crash.
            raise CommandError(str(exc), returncode=NO_HANDLER_EXIT_CODE) from None
        # Cloud Run sets nothing we can rely on for an instance id; runfleet sets this one.
        instance_id = os.environ.get("CONTROLPLANE_WORKER_INSTANCE") or f"{socket.gethostname()}-{os.getpid()}"
        config = worker_config(workload_class)
        worker = Worker(config, handler=handler, providers=get_providers(), instance_id=instance_id)

        stop = threading.Event()

        def request_stop(signum, _frame):
            if not stop.is_set():
                logger.info("%s: %s received; finishing in-flight work", slug, signal.Signals(signum).name)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, request_stop)
        interval = options["report_interval"] or settings.WORKER_REPORT_INTERVAL_SECONDS
        logger.info(
            "%s: worker %s started (concurrency %d, timeout %g s, max attempts %d)",
            slug,
            instance_id,
            config.max_concurrency,
            config.timeout_seconds,
            config.max_delivery_attempts,
        )
        try:
            worker.run(
                stop,
                report_interval_seconds=max(1.0, interval),
                grace_seconds=settings.WORKER_SHUTDOWN_GRACE_SECONDS,
            )
        except ProviderError as exc:
            raise CommandError(f"{slug}: {exc}") from None
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(worker.settled.items())) or "nothing"
        logger.info("%s: worker %s stopped after settling %s", slug, instance_id, counts)
        if worker.strays or worker.report_dropped:
            # Threads given up on (handlers handed back or timed out, a final report still retrying)
            # must not hold the exit: the interpreter's teardown waits on the client libraries' calls
            # in flight, and Cloud Run kills the instance 10 s after SIGTERM. Everything that counts
            # is settled by now.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
