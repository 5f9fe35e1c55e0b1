"""Celery tasks: thin wrappers that call services and own retry policy."""

import random

from celery import shared_task
from django.utils import timezone

from workloads.providers.base import ProviderError


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
