"""Which runbook an alert links to: the SLO's own, else its class's, else the section of
docs/runbook.md for the SLO's kind (or the dead-letter retention section) under RUNBOOK_BASE_URL."""

from django.conf import settings

from workloads.models import IncidentKind, Slo, SloIncident, SloKind

RUNBOOK_SECTIONS = {
    SloKind.QUEUE_AGE: "#1-page-queue-age",
    SloKind.SUCCESS_RATIO: "#4-page-success-ratio-or-latency",
    SloKind.COMPLETION_LATENCY: "#4-page-success-ratio-or-latency",
}
RETENTION_SECTION = "#7-dead-letters-near-the-end-of-their-retention"
POOL_SECTION = "#6-a-pool-is-unhealthy"


def runbook_url(slo: Slo) -> str:
    return slo.runbook_url or slo.workload_class.runbook_url or settings.RUNBOOK_BASE_URL + RUNBOOK_SECTIONS[slo.kind]


def incident_runbook_url(incident: SloIncident) -> str:
    if incident.kind == IncidentKind.DEAD_LETTER_RETENTION:
        wc = incident.workload_class
        return wc.runbook_url or settings.RUNBOOK_BASE_URL + RETENTION_SECTION
    if incident.kind == IncidentKind.POOL_UNHEALTHY:
        return incident.workload_class.runbook_url or settings.RUNBOOK_BASE_URL + POOL_SECTION
    return runbook_url(incident.slo)
