"""Celery tasks: thin wrappers that call services (with the current time) and own retry policy."""

import random

from celery import shared_task
from django.utils import timezone

from workloads.providers.base import ProviderError
from workloads.services import polling, rollups, slo_evaluation


@shared_task(bind=True, acks_late=True, max_retries=20)
def action_run(self, action_id: int) -> None:
    from workloads.services.actions import action_run as run

    try:
        run(action_id=action_id)
    except ProviderError as exc:
        if exc.permanent:
            raise
        # Transient cloud trouble: back off exponentially with full jitter, up to 5 minutes.
        countdown = random.uniform(0, min(300, 5 * 2**self.request.retries))
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task
def actions_resume() -> int:
    from workloads.services.actions import actions_resume as resume

    return len(resume(now=timezone.now()))


# Beat ticks. A tick that runs late or twice does no harm (each service is idempotent), and one
# that outlives its interval is not worth finishing: the next tick re-reads the same window.
@shared_task(ignore_result=True, soft_time_limit=50, time_limit=55)
def telemetry_poll() -> None:
    polling.metrics_poll(now=timezone.now())


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=55)
def telemetry_alerts_evaluate() -> None:
    summary = slo_evaluation.slo_alerts_evaluate(now=timezone.now())
    changes = summary.incidents
    if changes is not None and (changes.opened or changes.updated or changes.resolved):
        # Deliver now rather than at the next delivery tick (the outbox rows are committed).
        notifications_deliver.delay()


@shared_task(ignore_result=True, soft_time_limit=110, time_limit=120)
def notifications_deliver() -> None:
    from workloads.services.notifications import notifications_deliver_due

    notifications_deliver_due(now=timezone.now())


@shared_task(ignore_result=True)
def telemetry_downsample() -> None:
    rollups.rollups_downsample(now=timezone.now())


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=55)
def scaling_controller_tick() -> None:
    from workloads.services.scaling import scaling_controller_tick as tick

    tick(now=timezone.now())


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=55)
def pool_holds_expire() -> None:
    from workloads.services.incidents import pool_holds_expire as expire

    expire(now=timezone.now())


@shared_task(ignore_result=True, soft_time_limit=110, time_limit=120)
def dead_letters_sync() -> None:
    from workloads.services.deadletter_mirror import dead_letters_sync as sync

    sync(now=timezone.now())


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=55)
def triage_rules_run() -> None:
    from workloads.services.triage import triage_rules_run as run

    run(now=timezone.now())


@shared_task(ignore_result=True)
def prune() -> None:
    from workloads.services.pruning import prunes_run

    prunes_run(now=timezone.now())
