"""What every channel's message about an incident is built from: the incident, its class, its SLO
(or, for the incidents without one, what is promised instead), its alerts, links, a deployment in
the window and the kind's own fields. Frozen into the outbox row when the change is written
(services.alert_incidents._record_change); workloads.notifications.messages renders it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.urls import reverse

from workloads.domain import slo as slo_math
from workloads.models import IncidentKind, PoolControl, Slo, SloAlert, SloIncident, SloKind
from workloads.notifications.runbooks import incident_runbook_url
from workloads.providers.base import DEAD_LETTER_RETENTION_SECONDS
from workloads.selectors.deployments import deployment_note, latest_deployments


def _objective(slo: Slo) -> str:
    if slo.kind == SloKind.SUCCESS_RATIO:
        return f"{slo.target_percent.normalize():f} % of jobs succeed over {slo.window_days} d"
    return (
        f"p{slo.percentile.normalize():f} {slo.get_kind_display().lower()} under {slo.threshold_seconds:g} s, "
        f"{slo.target_percent.normalize():f} % of the time over {slo.window_days} d"
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _retention_subject(incident: SloIncident) -> dict:
    """The `slo` part of a dead-letter retention incident's context: what is promised and broken."""
    detail = incident_detail(incident)
    return {
        "id": None,
        "kind": IncidentKind.DEAD_LETTER_RETENTION,
        "kind_label": "dead-letter retention",
        "objective": (
            "every dead letter is mirrored before the dead-letter subscription's "
            f"{slo_math.window_label(detail['retention_seconds'])} retention drops it"
        ),
        "target_percent": None,
    }


def _pool_subject(incident: SloIncident) -> dict:
    """The `slo` part of an unhealthy-pool incident's context: what is promised and broken."""
    return {
        "id": None,
        "kind": IncidentKind.POOL_UNHEALTHY,
        "kind_label": "unhealthy pool",
        "objective": "the pool's instances report and complete work while a backlog waits",
        "target_percent": None,
    }


def _pool_fields(incident: SloIncident) -> dict:
    if incident.kind != IncidentKind.POOL_UNHEALTHY:
        return {}
    control = PoolControl.objects.filter(workload_class_id=incident.workload_class_id).first()
    cause = control.get_health_cause_display() if control and control.health_cause else "unhealthy"
    evidence = control.health_detail if control else ""
    return {
        "problem": f"has an unhealthy worker pool ({cause.lower()})",
        "alert_class": "pool-unhealthy",
        "pool": {"cause": control.health_cause if control else "", "evidence": evidence},
        "detail": (
            f"Its instances do no work while a backlog waits: {evidence or cause}. The controller adds no "
            "instances to it; see the runbook for crash loops, missing handlers and stuck workers."
        ),
    }


def incident_detail(incident: SloIncident) -> dict:
    """A retention incident's numbers as last evaluated (age and retention, seconds)."""
    return {
        "oldest_age_seconds": incident.dead_letter_oldest_age_seconds,
        "retention_seconds": DEAD_LETTER_RETENTION_SECONDS,
    }


def incident_context(incident: SloIncident, *, event: str, alerts: list[SloAlert]) -> dict:
    """What every channel's message is built from (workloads.notifications.messages), frozen at
    the change. Also the body of the generic webhook, so its fields are documented in docs/api.md."""
    slo = incident.slo
    wc = incident.subject_class
    if incident.resolved_at is not None:
        state = "resolved"
    elif incident.acknowledged_at is not None:
        state = "acknowledged"
    else:
        state = "open"
    return {
        "event": event,
        "incident": {
            "id": incident.pk,
            "key": incident.key,
            "state": state,
            "severity": incident.severity,
            "sequence": incident.sequence,
            "opened_at": _iso(incident.opened_at),
            "resolved_at": _iso(incident.resolved_at),
            "acknowledged_at": _iso(incident.acknowledged_at),
            "acknowledged_by": incident.acknowledged_by_label or None,
            "acknowledgement_note": incident.acknowledgement_note,
        },
        "workload_class": {"slug": wc.slug, "name": wc.name, "owner_team": wc.owner_team, "tier": wc.tier},
        "slo": (
            {
                "id": slo.pk,
                "kind": slo.kind,
                "kind_label": slo.get_kind_display().lower(),
                "objective": _objective(slo),
                "target_percent": str(slo.target_percent),
            }
            if slo is not None
            else _pool_subject(incident)
            if incident.kind == IncidentKind.POOL_UNHEALTHY
            else _retention_subject(incident)
        ),
        "alerts": [
            {
                "rule": alert.rule,
                "severity": alert.severity,
                "factor": alert.factor,
                "long_window": slo_math.window_label(alert.long_window_seconds),
                "short_window": slo_math.window_label(alert.short_window_seconds),
                "long_burn_rate": round(alert.last_long_burn_rate, 3),
                "short_burn_rate": round(alert.last_short_burn_rate, 3),
                "opened_at": _iso(alert.opened_at),
            }
            for alert in alerts
        ],
        "class_url": settings.CONTROLPLANE_PUBLIC_URL + reverse("dashboards:class-detail", args=[wc.slug]),
        "incident_url": settings.CONTROLPLANE_PUBLIC_URL + reverse("dashboards:alert-incidents") + f"#{incident.key}",
        "runbook_url": incident_runbook_url(incident),
        "deployment": _deployment_in_window(incident, alerts),
        **_retention_fields(incident),
        **_pool_fields(incident),
    }


def _deployment_in_window(incident: SloIncident, alerts: list[SloAlert]) -> dict | None:
    """The class's newest deployment inside the burning alerts' longest window (1 h without
    alerts), so a page says "after deploy v2.4.1" when new code may be the cause."""
    end = max((alert.last_evaluated_at for alert in alerts), default=incident.opened_at)
    window = max((alert.long_window_seconds for alert in alerts), default=3600)
    wc_id = incident.subject_class.pk
    deployment = latest_deployments(class_ids=[wc_id], start=end - timedelta(seconds=window), end=end).get(wc_id)
    if deployment is None:
        return None
    return {
        "label": deployment.label,
        "deployed_at": _iso(deployment.deployed_at),
        "source": deployment.source,
        "link": deployment.link,
        "note": deployment_note(deployment, now=end),
    }


def _days_or_hours(seconds: float) -> str:
    return f"{seconds / 86400:.1f} d" if seconds >= 86400 else f"{seconds / 3600:.1f} h"


def _retention_fields(incident: SloIncident) -> dict:
    if incident.kind != IncidentKind.DEAD_LETTER_RETENTION:
        return {}
    detail = incident_detail(incident)
    age, retention = detail["oldest_age_seconds"] or 0.0, detail["retention_seconds"]
    return {
        "problem": "has dead letters nearing the end of their retention",
        "alert_class": "dead-letter-retention",
        "dead_letters": {**detail, "percent_of_retention": round(100.0 * age / retention, 1)},
        "detail": (
            f"The oldest dead letter not mirrored yet is {_days_or_hours(age)} old, "
            f"{100.0 * age / retention:.0f} % of the dead-letter subscription's "
            f"{slo_math.window_label(retention)} retention: Pub/Sub drops it at the end. "
            "Check that the dead-letters-sync tick runs and can read the subscription."
        ),
    }
