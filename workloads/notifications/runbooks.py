"""Which runbook an alert links to: the SLO's own, else its class's, else the section of
docs/runbook.md for the SLO's kind under RUNBOOK_BASE_URL."""

from django.conf import settings

from workloads.models import Slo, SloKind

RUNBOOK_SECTIONS = {
    SloKind.QUEUE_AGE: "#1-page-queue-age",
    SloKind.SUCCESS_RATIO: "#4-page-success-ratio-or-latency",
    SloKind.COMPLETION_LATENCY: "#4-page-success-ratio-or-latency",
}


def runbook_url(slo: Slo) -> str:
    return slo.runbook_url or slo.workload_class.runbook_url or settings.RUNBOOK_BASE_URL + RUNBOOK_SECTIONS[slo.kind]
