from django.conf import settings
from django.core.management.base import BaseCommand

from workloads.providers import get_providers
from workloads.providers.celery import runtime_broker_url, runtime_celery_app
from workloads.runtime.celery_events import CeleryTaskObserver, observe_celery_events
from workloads.selectors.runtimes import celery_classes_by_task


class Command(BaseCommand):
    help = (
        "Receive the task events of Celery runtimes (workers started with -E) from "
        "RUNTIME_CELERY_BROKER_URL and report each class's completions, failures and latency, "
        "like the worker kit does. Runs until stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.RUNTIME_CELERY_REPORT_INTERVAL_SECONDS,
            help="Seconds between reports (default RUNTIME_CELERY_REPORT_INTERVAL_SECONDS).",
        )

    def handle(self, *args, interval, **options):
        observer = CeleryTaskObserver(classes_by_task=celery_classes_by_task, metrics=get_providers().metrics)
        self.stdout.write(f"Observing Celery task events for {len(observer.classes_by_task)} task(s).")
        observe_celery_events(
            app=runtime_celery_app(), broker_url=runtime_broker_url(), observer=observer, interval_seconds=interval
        )
