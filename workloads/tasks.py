"""Celery tasks: thin wrappers that call services with the current time."""

from celery import shared_task
from django.utils import timezone

from workloads.services import telemetry


# Beat ticks. A tick that runs late or twice does no harm (each service is idempotent), and one
# that outlives its interval is not worth finishing: the next tick re-reads the same window.
@shared_task(ignore_result=True, soft_time_limit=50, time_limit=55)
def telemetry_poll() -> None:
    telemetry.metrics_poll(now=timezone.now())


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=55)
def telemetry_alerts_evaluate() -> None:
    telemetry.slo_alerts_evaluate(now=timezone.now())


@shared_task(ignore_result=True)
def telemetry_downsample() -> None:
    telemetry.rollups_downsample(now=timezone.now())
