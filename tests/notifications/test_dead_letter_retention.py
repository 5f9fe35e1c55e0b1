"""Dead letters near the end of the dead-letter subscription's retention: the telemetry poll reads
the oldest un-mirrored dead letter's age (a Metrics port gauge, independent of the mirror sync),
the overview warns, and the alert evaluation opens an incident that goes through the same routes
and outbox as SLO incidents (ticket, then page, then resolved)."""

from datetime import timedelta

import pytest

from tests.factories import WorkloadClassFactory
from tests.notifications.helpers import T0, channel, default_route
from tests.workloads.telemetry_doubles import FakeMetrics, installed_metrics
from workloads.domain.dead_letters import retention_risk
from workloads.models import IncidentKind, Notification, SloIncident
from workloads.providers.base import DEAD_LETTER_RETENTION_SECONDS, MetricKind
from workloads.services.notifications import notifications_deliver_due
from workloads.services.polling import metrics_poll
from workloads.services.slo_evaluation import slo_alerts_evaluate

DAY = 86400.0


@pytest.fixture
def metrics():
    with installed_metrics(FakeMetrics()) as fake:
        yield fake


def _age_is(metrics, age: float | None, *, now):
    metrics.set(MetricKind.UNDELIVERED_MESSAGES, lambda slug, end: 0.0)
    metrics.set(MetricKind.DEAD_LETTER_OLDEST_AGE, lambda slug, end: age)
    metrics_poll(now=now, window_minutes=5)
    slo_alerts_evaluate(now=now)


def test_thresholds_are_shares_of_the_retention():
    assert DEAD_LETTER_RETENTION_SECONDS == 7 * 86400
    assert retention_risk(None, ticket_percent=25, page_percent=50) is None
    assert retention_risk(1.0 * DAY, ticket_percent=25, page_percent=50) is None
    ticket = retention_risk(2.0 * DAY, ticket_percent=25, page_percent=50)
    assert ticket.severity == "ticket" and round(ticket.percent) == 29 and ticket.remaining_seconds == 5 * DAY
    assert retention_risk(4.0 * DAY, ticket_percent=25, page_percent=50).severity == "page"


def test_an_ageing_dead_letter_opens_a_ticket_then_a_page_then_resolves(db, metrics, receiver):
    default_route(channel("webhook", receiver))
    WorkloadClassFactory(slug="ledger")  # no SLO at all: the warning does not depend on one

    _age_is(metrics, 3600.0, now=T0)
    assert not SloIncident.objects.exists()

    _age_is(metrics, 2 * DAY, now=T0 + timedelta(minutes=5))
    incident = SloIncident.objects.get()
    assert (incident.kind, incident.severity, incident.slo) == (IncidentKind.DEAD_LETTER_RETENTION, "ticket", None)
    assert incident.workload_class.slug == "ledger" and incident.dead_letter_oldest_age_seconds == 2 * DAY

    _age_is(metrics, 2 * DAY + 300, now=T0 + timedelta(minutes=10))  # same severity: nothing new to say
    _age_is(metrics, 4 * DAY, now=T0 + timedelta(minutes=15))
    _age_is(metrics, 0.0, now=T0 + timedelta(minutes=20))  # the sync drained it: the subscription is empty
    incident.refresh_from_db()
    assert incident.resolved_at == T0 + timedelta(minutes=20)
    events = list(Notification.objects.order_by("sequence").values_list("event", "severity"))
    assert events == [("trigger", "ticket"), ("update", "page"), ("resolve", "page")]

    notifications_deliver_due(now=T0 + timedelta(minutes=21))
    opened, paged, resolved = receiver.wait_for(3)
    body = opened.json()
    assert body["summary"] == (
        "[Opened] TICKET: ledger dead-letter retention has dead letters nearing the end of their retention"
    )
    assert body["dead_letters"] == {
        "oldest_age_seconds": 2 * DAY,
        "retention_seconds": DEAD_LETTER_RETENTION_SECONDS,
        "percent_of_retention": 28.6,
    }
    assert body["runbook_url"].endswith("docs/runbook.md#7-dead-letters-near-the-end-of-their-retention")
    assert paged.json()["incident"]["severity"] == "page"
    assert resolved.json()["incident"]["state"] == "resolved"


def test_stale_telemetry_keeps_the_incident_open(db, metrics):
    WorkloadClassFactory(slug="ledger")
    _age_is(metrics, 2 * DAY, now=T0)
    # The poll stops bringing data (the gauge has no sample): no fresh number says it is fixed.
    metrics.set(MetricKind.DEAD_LETTER_OLDEST_AGE, lambda slug, end: None)
    metrics.set(MetricKind.UNDELIVERED_MESSAGES, lambda slug, end: None)
    later = T0 + timedelta(hours=2)
    metrics_poll(now=later, window_minutes=5)
    slo_alerts_evaluate(now=later)
    assert SloIncident.objects.get().is_open


def test_overview_and_incident_list_warn(db, metrics, make_user, client_as):
    from django.test import Client
    from django.utils import timezone

    WorkloadClassFactory(slug="ledger")
    now = timezone.now()
    _age_is(metrics, 4 * DAY, now=now)
    viewer = make_user("vera-viewer")
    browser = Client()
    browser.force_login(viewer)

    page = browser.get("/").content.decode()
    assert "oldest 4 d / 7 d" in page and "Is the dead-letter sync running?" in page

    incidents = browser.get("/alerts/").content.decode()
    assert "Dead-letter retention" in incidents and "The oldest dead letter not mirrored yet is 4 d old" in incidents

    api = client_as(viewer).get("/api/v1/alert-incidents/?state=open").json()
    (row,) = api["results"]
    assert (row["kind"], row["workload_class"], row["slo"], row["severity"]) == (
        "dead_letter_retention",
        "ledger",
        None,
        "page",
    )
    assert row["dead_letter_oldest_age_seconds"] == 4 * DAY
