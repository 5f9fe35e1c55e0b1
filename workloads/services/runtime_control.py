"""The escape hatch: pause, resume and incident mode for runtimes the control plane does not run.

A class on an observed runtime (a `custom` one above all) is never provisioned or scaled by us, so
a pause cannot set an instance count. Instead the control plane sends a control signal: a JSON POST
to the class's `control_webhook_url`, signed like notification webhooks (HMAC-SHA256 over
"<timestamp>." + body with RUNTIME_CONTROL_SIGNING_SECRET). The runtime acts on it and acknowledges
it through the API (`POST /api/v1/classes/<slug>/control-signals/<id>/ack/`). Sending is an action
(retried on a transient failure); the screen shows sent, acknowledged or silent.
"""

from __future__ import annotations

import time
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from workloads.errors import ApplicationError
from workloads.models import Action, ActionKind, ActionStep, ControlSignal, SignalKind, WorkloadClass
from workloads.notifications import transport
from workloads.providers.base import ProviderError
from workloads.selectors.runtimes import signal_state  # noqa: F401  (re-exported for callers)
from workloads.services.actions import ActionHandler, PlannedStep, action_request, register_handler
from workloads.services.audit import audit_event_record

SIGNAL_EVENT = "runtime.control"


def _label(actor) -> str:
    return actor.get_username() if actor is not None else "system"


def control_signal_send(
    *, workload_class: WorkloadClass, kind: str, actor, reason: str = "", incident=None, now: datetime | None = None
) -> ControlSignal:
    """Record a pause or resume signal for an observed runtime and request the action that sends it."""
    now = now or timezone.now()
    if workload_class.runs_on_worker_pool:
        raise ApplicationError(
            f"{workload_class.slug} runs on a worker pool: pause it as a pool.", code="managed_runtime"
        )
    if not workload_class.control_webhook_url:
        raise ApplicationError(
            f"{workload_class.slug} has no control webhook: set control_webhook_url to reach its runtime.",
            code="no_control_webhook",
        )
    try:
        kind = SignalKind(kind)
    except ValueError:
        raise ApplicationError(
            f"Unknown signal {kind!r}: pause or resume.", status=400, code="invalid_signal"
        ) from None
    with transaction.atomic():
        signal = ControlSignal.objects.create(
            workload_class=workload_class,
            kind=kind,
            reason=reason[:2000],
            incident=incident,
            requested_by_label=_label(actor)[:150],
            created_at=now,
        )
        signal.action = action_request(
            kind=ActionKind.CONTROL_SIGNAL,
            actor=actor,
            reason=reason,
            workload_class=workload_class,
            target=f"{kind} signal to {workload_class.slug}",
            parameters={"signal": signal.pk},
        )
        signal.save(update_fields=["action"])
        audit_event_record(
            actor=actor,
            action=f"runtime_control.{kind}",
            target=signal,
            target_repr=f"{kind} signal to {workload_class.slug}",
            workload_class_slug=workload_class.slug,
            extra={"reason": reason, "incident": incident.pk if incident else None},
        )
    return signal


def incident_signals_send(*, incident, kind: str, actor, reason: str) -> list[str]:
    """Incident mode reaches the deferrable classes on observed runtimes through their control
    webhook (the ones without one cannot be reached, and are left out). Returns their slugs."""
    classes = (
        WorkloadClass.objects.filter(tier="deferrable").exclude(runtime="worker_pool").exclude(control_webhook_url="")
    )
    if incident.environment_id is not None:  # incident mode in one environment reaches only its classes
        classes = classes.filter(environment_id=incident.environment_id)
    sent = []
    for workload_class in classes.order_by("slug"):
        control_signal_send(workload_class=workload_class, kind=kind, actor=actor, reason=reason, incident=incident)
        sent.append(workload_class.slug)
    return sent


@transaction.atomic
def control_signal_acknowledge(*, signal: ControlSignal, actor, now: datetime | None = None) -> ControlSignal:
    """The runtime says it acted on the signal. Idempotent: a second acknowledgement changes nothing."""
    signal = ControlSignal.objects.select_for_update().get(pk=signal.pk)
    if signal.acknowledged_at is not None:
        return signal
    signal.acknowledged_at = now or timezone.now()
    signal.acknowledged_by_label = _label(actor)[:150]
    signal.save(update_fields=["acknowledged_at", "acknowledged_by_label"])
    audit_event_record(
        actor=actor,
        action="runtime_control.acknowledge",
        target=signal,
        target_repr=f"{signal.kind} signal to {signal.workload_class.slug}",
        workload_class_slug=signal.workload_class.slug,
    )
    return signal


def signal_body(signal: ControlSignal) -> dict:
    path = reverse("api:class-control-signal-ack", args=[signal.workload_class.slug, signal.pk])
    return {
        "schema": "controlplane.control/v1",
        "signal_id": signal.pk,
        "workload_class": signal.workload_class.slug,
        "runtime": signal.workload_class.runtime,
        "runtime_resource": signal.workload_class.runtime_resource,
        "kind": signal.kind,
        "reason": signal.reason,
        "incident": signal.incident_id,
        "created_at": signal.created_at.isoformat(),
        "acknowledge_url": settings.CONTROLPLANE_PUBLIC_URL.rstrip("/") + path,
    }


class ControlSignalHandler(ActionHandler):
    """One step: POST the signed signal. A 5xx, 408, 429 or a network error is transient (the
    action is retried with backoff); another 4xx fails the step with the runtime's answer."""

    kind = ActionKind.CONTROL_SIGNAL

    def plan(self, action: Action) -> list[PlannedStep]:
        return [PlannedStep(key=f"signal {action.parameters['signal']}")]

    def run_step(self, action: Action, step: ActionStep) -> dict:
        signal = ControlSignal.objects.select_related("workload_class").get(pk=action.parameters["signal"])
        body = transport.encode(signal_body(signal))
        stamp = int(time.time())
        headers = {transport.TIMESTAMP_HEADER: str(stamp), transport.EVENT_HEADER: SIGNAL_EVENT}
        if settings.RUNTIME_CONTROL_SIGNING_SECRET:
            headers[transport.SIGNATURE_HEADER] = transport.sign(settings.RUNTIME_CONTROL_SIGNING_SECRET, stamp, body)
        outcome = transport.post_json(
            signal.workload_class.control_webhook_url,
            body,
            headers=headers,
            timeout=settings.NOTIFICATION_HTTP_TIMEOUT_SECONDS,
        )
        if not outcome.ok:
            ControlSignal.objects.filter(pk=signal.pk).update(last_error=outcome.error[:2000])
            raise ProviderError(
                f"The runtime's control webhook answered: {outcome.error}",
                permanent=not outcome.retryable,
                code=str(outcome.status_code or "UNAVAILABLE"),
            )
        ControlSignal.objects.filter(pk=signal.pk).update(sent_at=timezone.now(), last_error="")
        return {"status": outcome.status_code}


register_handler(ControlSignalHandler())
