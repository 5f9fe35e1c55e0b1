"""An unhealthy pool is alerted through the routes: while the controller judges a class's pool
unhealthy (workloads.domain.health), the alert evaluation keeps one incident open for it, delivered through
the same routes and outbox as SLO incidents, and resolves it when the verdict changes."""

from datetime import timedelta

from tests.factories import WorkloadClassFactory
from tests.notifications.helpers import T0, channel, default_route
from workloads.models import IncidentKind, Notification, PoolControl, PoolHealth, SloIncident, UnhealthyCause
from workloads.services.notifications import notifications_deliver_due
from workloads.services.slo_evaluation import slo_alerts_evaluate


def test_an_unhealthy_pool_pages_through_the_routes_once_and_resolves(db, receiver):
    default_route(channel("webhook", receiver))
    wc = WorkloadClassFactory(slug="thumbnails")
    control = PoolControl.objects.create(workload_class=wc)

    slo_alerts_evaluate(now=T0)
    assert not SloIncident.objects.exists()  # unknown health is not an incident

    control.health = PoolHealth.UNHEALTHY
    control.health_cause = UnhealthyCause.NO_HANDLER
    control.health_detail = "3 workers exited 78 (no handler) in 2 min; last report never"
    control.health_since = T0 + timedelta(minutes=1)
    control.save()
    slo_alerts_evaluate(now=T0 + timedelta(minutes=2))
    slo_alerts_evaluate(now=T0 + timedelta(minutes=3))  # still unhealthy: nothing new to say
    incident = SloIncident.objects.get()
    assert (incident.kind, incident.severity, incident.slo, incident.workload_class) == (
        IncidentKind.POOL_UNHEALTHY,
        "page",
        None,
        wc,
    )
    assert incident.opened_at == T0 + timedelta(minutes=1)

    control.health = PoolHealth.HEALTHY
    control.save()
    slo_alerts_evaluate(now=T0 + timedelta(minutes=4))
    incident.refresh_from_db()
    assert incident.resolved_at == T0 + timedelta(minutes=4)
    assert list(Notification.objects.order_by("sequence").values_list("event", flat=True)) == ["trigger", "resolve"]

    notifications_deliver_due(now=T0 + timedelta(minutes=5))
    opened, resolved = receiver.wait_for(2)
    body = opened.json()
    assert body["summary"] == "[Opened] PAGE: thumbnails unhealthy pool has an unhealthy worker pool (no handler)"
    assert body["pool"] == {"cause": "no_handler", "evidence": control.health_detail}
    assert "exited 78" in body["detail"]
    assert body["runbook_url"].endswith("docs/runbook.md#6-a-pool-is-unhealthy")
    assert resolved.json()["incident"]["state"] == "resolved"


def test_the_alerts_page_shows_the_pool_incident_with_its_evidence(db, client, admin_user):
    wc = WorkloadClassFactory(slug="thumbnails")
    PoolControl.objects.create(
        workload_class=wc,
        health=PoolHealth.UNHEALTHY,
        health_cause=UnhealthyCause.CRASH_LOOPING,
        health_detail="5 exits in 3 min",
        health_since=T0,
    )
    slo_alerts_evaluate(now=T0 + timedelta(minutes=1))
    client.force_login(admin_user)
    html = client.get("/alerts/").content.decode()
    assert "Unhealthy pool" in html and "5 exits in 3 min" in html
