"""One incident per SLO from the real evaluation, its outbox rows, and no duplicates on re-runs."""

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.factories import SloFactory, WorkloadClassFactory
from tests.notifications.helpers import T0, channel, default_route
from tests.workloads.telemetry_doubles import FakeMetrics, dead_lettered_work, installed_metrics
from workloads.models import Notification, SloAlert, SloIncident, SloStatus, WorkloadClass
from workloads.providers.base import MetricKind
from workloads.services.notifications import notifications_deliver_due
from workloads.services.polling import metrics_poll
from workloads.services.slo_evaluation import slo_alerts_evaluate

MINUTE = timedelta(minutes=1)
SPIKE_MINUTES = 10


@pytest.fixture
def metrics():
    with installed_metrics(FakeMetrics()) as fake:
        yield fake


def failure_spike(metrics, slug: str, *, until: timedelta = timedelta(hours=7)):
    in_spike = lambda end: T0 <= end - MINUTE < T0 + SPIKE_MINUTES * MINUTE  # noqa: E731
    metrics.set(MetricKind.COMPLETED, lambda s, end: 0.0 if in_spike(end) else 100.0)
    metrics.set(MetricKind.FAILED, lambda s, end: 100.0 if in_spike(end) else 0.0)
    start, end = T0 - timedelta(hours=7), T0 + until
    # No retries: each failed attempt is a unit of work dead-lettered (the success ratio's bad events).
    dead_lettered_work(
        WorkloadClass.objects.get(slug=slug), lambda s, end: 100 if in_spike(end) else 0, start=start, end=end
    )
    metrics_poll(now=end, window_minutes=int((end - start) / MINUTE))


def test_the_windows_of_one_slo_that_fire_together_are_one_incident(db, metrics, receiver):
    hook = channel("webhook", receiver)
    default_route(hook)
    wc = WorkloadClassFactory(slug="spiky")
    slo = SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99.9"), min_traffic=20)
    failure_spike(metrics, "spiky", until=timedelta(hours=7))

    for offset in range(-3, 45):
        now = T0 + offset * MINUTE
        slo_alerts_evaluate(now=now)
        # The evaluation tick may run twice for one minute (a late beat, a retried task).
        slo_alerts_evaluate(now=now)

    # page-1h-5m and ticket-3d-6h open at +1, page-6h-30m at +3, the pages resolve at +15 and +40:
    # three alerts, one incident, two changes (opened as a page, down to a ticket at +40).
    assert SloAlert.objects.filter(slo=slo).count() == 3
    incident = SloIncident.objects.get()
    assert set(incident.alerts.values_list("rule", flat=True)) == {"page-1h-5m", "page-6h-30m", "ticket-3d-6h"}
    assert incident.key == f"slo-{slo.pk}-{int((T0 + MINUTE).timestamp())}"
    assert incident.severity == "ticket" and incident.is_open
    rows = list(Notification.objects.order_by("sequence").values_list("event", "severity", "created_at"))
    assert rows == [("trigger", "page", T0 + MINUTE), ("update", "ticket", T0 + 40 * MINUTE)]

    # The ticket's 6-hour window calms down hours later: one resolve, and a re-run adds nothing.
    resolve_at = T0 + timedelta(hours=6, minutes=15)
    slo_alerts_evaluate(now=resolve_at)
    slo_alerts_evaluate(now=resolve_at)
    incident.refresh_from_db()
    assert incident.resolved_at == resolve_at
    assert list(Notification.objects.order_by("sequence").values_list("event", flat=True)) == [
        "trigger",
        "update",
        "resolve",
    ]

    notifications_deliver_due(now=resolve_at)
    notifications_deliver_due(now=resolve_at)  # nothing is sent twice
    bodies = [r.json() for r in receiver.wait_for(3)]
    assert len(receiver.requests) == 3
    assert [(b["event"], b["incident"]["key"], b["incident"]["severity"]) for b in bodies] == [
        ("trigger", incident.key, "page"),
        ("update", incident.key, "ticket"),
        ("resolve", incident.key, "ticket"),
    ]


def test_a_burn_held_back_by_the_low_traffic_guard_says_so(db, metrics):
    wc = WorkloadClassFactory(slug="quiet")
    slo = SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99"), min_traffic=20)
    # 19 jobs in the last hour, 4 failed: a 21 % failure rate, 21x the budget, but under the guard.
    for minute in range(1, 16):
        metrics.add(MetricKind.COMPLETED, wc.slug, T0 - minute * MINUTE, 1.0)
    for minute in range(1, 5):
        metrics.add(MetricKind.FAILED, wc.slug, T0 - minute * MINUTE, 1.0)
    failed_minutes = {T0 - minute * MINUTE for minute in range(1, 5)}
    dead_lettered_work(wc, lambda s, end: 1 if end in failed_minutes else 0, start=T0 - 60 * MINUTE, end=T0)
    metrics_poll(now=T0, window_minutes=60)
    slo_alerts_evaluate(now=T0)

    assert not SloAlert.objects.exists()
    guarded = SloStatus.objects.get(slo=slo).guarded
    assert {"rule": "page-1h-5m", "events": 19.0, "min_traffic": 20} == {
        k: guarded[0][k] for k in ("rule", "events", "min_traffic")
    }
    assert guarded[0]["burn_rate"] > 14.4


def test_an_incident_after_a_deployment_names_it(db, metrics, receiver):
    from workloads.models import DeploymentSource
    from workloads.notifications.messages import summary
    from workloads.services.deployments import deployment_record

    default_route(channel("webhook", receiver))
    wc = WorkloadClassFactory(slug="spiky")
    SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99.9"), min_traffic=20)
    failure_spike(metrics, "spiky", until=timedelta(hours=7))
    deployment_record(
        workload_class=wc, actor=None, source=DeploymentSource.API, now=T0, version="v4.2", deployed_at=T0 - 20 * MINUTE
    )
    slo_alerts_evaluate(now=T0 + MINUTE)
    context = Notification.objects.get().context
    assert context["deployment"]["label"] == "v4.2" and context["deployment"]["source"] == "api"
    assert summary(context).endswith("is burning its error budget (deploy v4.2 21 min ago)")


def test_an_incident_without_a_deployment_in_its_window_says_nothing_of_one(db, metrics, receiver):
    from workloads.models import DeploymentSource
    from workloads.notifications.messages import summary
    from workloads.services.deployments import deployment_record

    default_route(channel("webhook", receiver))
    wc = WorkloadClassFactory(slug="spiky")
    SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99.9"), min_traffic=20)
    failure_spike(metrics, "spiky", until=timedelta(hours=7))
    # Older than the longest burning window (3 days for the ticket rule).
    deployment_record(
        workload_class=wc,
        actor=None,
        source=DeploymentSource.API,
        now=T0,
        version="v1",
        deployed_at=T0 - timedelta(days=4),
    )
    slo_alerts_evaluate(now=T0 + MINUTE)
    context = Notification.objects.get().context
    assert context["deployment"] is None and "deploy" not in summary(context)
