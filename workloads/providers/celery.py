"""Celery runtimes: the app that reaches their broker, to send a class's events to its task and to
receive the task events `manage.py observe_celery` turns into reports (workloads/runtime/celery_events.py).

The broker is RUNTIME_CELERY_BROKER_URL (the embedded broker by default), never the control plane's
own task queue settings: a legacy worker has its own queues and names."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from functools import cache

from celery import Celery
from django.conf import settings

from workloads.providers.base import ATTR_IDEMPOTENCY_KEY, OutboundMessage, ProviderError


@cache
def runtime_celery_app() -> Celery:
    """Its connections must be opened with `runtime_broker_url()`: Celery lets the environment's
    CELERY_BROKER_URL (the control plane's own broker) win over any configured broker URL."""
    app = Celery("controlplane-runtimes", set_as_current=False)
    app.conf.broker_transport_options = settings.RUNTIME_CELERY_BROKER_TRANSPORT_OPTIONS
    # A task-sent event marks when the event left ingestion: the observed latency starts there.
    app.conf.task_send_sent_event = True
    app.conf.broker_connection_retry_on_startup = True
    return app


def runtime_broker_url() -> str:
    return settings.RUNTIME_CELERY_BROKER_URL


def celery_send(
    task_name: str,
    messages: Sequence[OutboundMessage],
    *,
    on_published: Callable[[int, str], None] | None = None,
) -> list[str]:
    """Send each message to `task_name` as `task(payload, attributes=...)`; returns the task ids
    (the receipts). The idempotency key travels as an attribute: a legacy task that deduplicates
    can use it.

    `on_published(index, task_id)` is called as each message is handed to the broker, also when a
    later one fails (the ProviderError is raised after): the caller keeps the receipts of the tasks
    already sent, since a legacy worker has no completed-key check to skip a second copy."""
    app = runtime_celery_app()
    task_ids = []
    try:
        with app.connection_for_write(runtime_broker_url()) as connection, app.amqp.Producer(connection) as producer:
            for index, message in enumerate(messages):
                task_id = str(uuid.uuid4())
                app.send_task(
                    task_name,
                    args=[json.loads(message.data)],
                    kwargs={"attributes": dict(message.attributes)},
                    task_id=task_id,
                    producer=producer,
                    headers={"idempotency_key": message.attributes.get(ATTR_IDEMPOTENCY_KEY, "")},
                )
                # The message is in the broker: send_task returns once it is, and raises only for
                # it (a task-sent event that fails is buffered by Celery, never raised).
                task_ids.append(task_id)
                if on_published is not None:
                    on_published(index, task_id)
    except Exception as exc:  # kombu raises many kinds when the broker is unreachable
        raise ProviderError(
            f"Could not send to the Celery task {task_name}: {exc}", permanent=False, code="UNAVAILABLE"
        ) from exc
    return task_ids
