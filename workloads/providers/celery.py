"""Celery runtimes: the app that reaches their broker, to send a class's events to its task and to
receive the task events `manage.py observe_celery` turns into reports (workloads/runtime/celery_events.py).

The broker is RUNTIME_CELERY_BROKER_URL (the embedded broker by default), never the control plane's
own task queue settings: a legacy worker has its own queues and names."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from functools import cache

from celery import Celery
from django.conf import settings

from workloads.providers.base import ATTR_IDEMPOTENCY_KEY, OutboundMessage, ProviderError

logger = logging.getLogger(__name__)

SENDING_THREAD_NAME = "celery-send"  # celery_send's threads: "celery-send <task name>"


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
    deadline: float,
    on_published: Callable[[int, str], None] | None = None,
) -> list[str]:
    """Send each message to `task_name` as `task(payload, attributes=...)` within `deadline`
    seconds; returns the task ids (the receipts). The idempotency key travels as an attribute: a
    legacy task that deduplicates can use it.

    `on_published(index, task_id)` is called for each message the broker took before the deadline,
    also when a later one failed or did not make it in time (the ProviderError is raised after):
    the caller keeps the receipts of the tasks already sent, since a legacy worker has no
    completed-key check to skip a second copy.

    The sending runs on a thread of its own and this call waits for it at most `deadline`: a
    broker that accepts connections and never answers would otherwise hold the caller (and every
    request of its ingestion group) for as long as the socket stays open. The broker's timeouts
    (`_send_transport_options`) bound each step of that thread, so it ends soon after too."""
    sending = _Sending(task_name, list(messages))
    threading.Thread(
        target=sending.run, args=(deadline,), name=f"{SENDING_THREAD_NAME} {task_name}", daemon=True
    ).start()
    sent, error = sending.wait(deadline)
    if on_published is not None:
        for index, task_id in sent:
            on_published(index, task_id)
    if error is not None:
        raise ProviderError(
            f"Could not send to the Celery task {task_name}: {error}", permanent=False, code="UNAVAILABLE"
        ) from error
    return [task_id for _index, task_id in sent]


class _Sending:
    """One celery_send: the thread that talks to the broker and the caller that waits for it share
    this, under one lock, so a task is either reported to the caller or, once the caller gave up,
    known to have no receipt."""

    def __init__(self, task_name: str, messages: list[OutboundMessage]):
        self.task_name = task_name
        self.messages = messages
        self._condition = threading.Condition()
        self._sent: list[tuple[int, str]] = []  # (index, task id) the broker took
        self._error: BaseException | None = None
        self._finished = False
        self._given_up = False

    def wait(self, deadline: float) -> tuple[list[tuple[int, str]], BaseException | None]:
        """What was sent, and the error (None when every message was sent), after at most `deadline` s."""
        with self._condition:
            self._condition.wait_for(lambda: self._finished, timeout=deadline)
            self._given_up = True  # from here on a task the thread sends has no receipt
            if self._finished:
                return list(self._sent), self._error
            return list(self._sent), TimeoutError(
                f"the broker did not take {len(self.messages) - len(self._sent)} of {len(self.messages)} tasks "
                f"within {deadline:g} s"
            )

    def run(self, deadline: float) -> None:
        app = runtime_celery_app()
        url = runtime_broker_url()
        connection = app.connection_for_write(
            url, connect_timeout=deadline, transport_options=_send_transport_options(url, deadline)
        )
        try:
            with app.amqp.Producer(connection) as producer:
                self._send_all(app, producer)
            connection.release()
        except Exception as exc:  # noqa: BLE001 - kombu raises many kinds when the broker is unreachable
            # Dropped, not closed: closing an AMQP connection talks to the broker, which would wait
            # on a silent one again (twice: the channel, then the connection).
            connection.collect()
            with self._condition:
                self._error = exc
        finally:
            with self._condition:
                self._finished = True
                self._condition.notify_all()

    def _send_all(self, app: Celery, producer) -> None:
        for index, message in enumerate(self.messages):
            with self._condition:
                if self._given_up:
                    return
            task_id = str(uuid.uuid4())
            app.send_task(
                self.task_name,
                args=[json.loads(message.data)],
                kwargs={"attributes": dict(message.attributes)},
                task_id=task_id,
                producer=producer,
                headers={"idempotency_key": message.attributes.get(ATTR_IDEMPOTENCY_KEY, "")},
                # No retry inside: a write whose reply timed out may have reached the broker and
                # would be sent twice. The caller's retry sends only what has no receipt.
                retry=False,
            )
            # The message is in the broker: send_task returns once it is (and its task-sent event
            # was written), and raises only for it (a task-sent event that fails is buffered by
            # Celery, never raised).
            with self._condition:
                if self._given_up:
                    logger.warning(
                        "Task %s of %s reached the broker after the caller's deadline: its key was given "
                        "back, so the client's retry sends it again",
                        task_id,
                        self.task_name,
                    )
                    return
                self._sent.append((index, task_id))


def _send_transport_options(url: str, deadline: float) -> dict:
    """The broker options of celery_send's connection (over RUNTIME_CELERY_BROKER_TRANSPORT_OPTIONS):
    one connection attempt, not kombu's endless retry, and no step (connecting, a write, waiting
    for its reply) longer than the whole send may take. The caller stops waiting at the deadline
    anyway; these make the sending thread end soon after instead of waiting on a silent socket."""
    options: dict = {"max_retries": 0}
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss", "sentinel"):
        options.update(socket_timeout=deadline, socket_connect_timeout=deadline)
    elif scheme in ("amqp", "amqps", "pyamqp"):
        # The connect timeout (kombu's connect_timeout) also bounds py-amqp's handshake. Without
        # publisher confirms a publish only writes to the socket: a task a hung broker never took
        # would get a receipt. With them each publish waits for the broker's ack (read_timeout).
        options.update(read_timeout=deadline, write_timeout=deadline, confirm_publish=True)
    return options
