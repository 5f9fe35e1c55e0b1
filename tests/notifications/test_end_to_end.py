"""A paging SLO end to end, from metrics to a real HTTP receiver: a real poll writes the rollups of
a failure spike, the evaluation opens and resolves its burn-rate alerts, the incident's changes go
through the outbox and are delivered over HTTP. The receiver (and the demo receiver) hear of the
incident exactly three times, with one key: opened, severity changed, resolved; evaluating or
delivering again sends nothing twice."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.factories import SloFactory, WorkloadClassFactory
from tests.notifications.helpers import SECRET, channel, default_route
from tests.workloads.telemetry_doubles import FakeMetrics, dead_lettered_work, installed_metrics
from workloads.models import ChannelKind, Notification, NotificationChannel, SloIncident
from workloads.notifications import transport
from workloads.providers.base import MetricKind
from workloads.services.notifications import notifications_deliver_due
from workloads.services.polling import metrics_poll
from workloads.services.slo_evaluation import slo_alerts_evaluate

MINUTE = timedelta(minutes=1)
SPIKE = datetime(2026, 3, 2, 12, 37, tzinfo=UTC)  # not on the hour: windows cross hour boundaries
SPIKE_MINUTES = 10  # of 100 % failures, at 100 jobs a minute


@pytest.fixture
def metrics():
    with installed_metrics(FakeMetrics()) as fake:
        yield fake


def test_a_paging_slo_is_one_notification_updated_and_resolved_at_the_receiver(db, metrics, receiver):
    hook = channel("webhook", receiver)
    demo = NotificationChannel.objects.create(name="demo receiver", kind=ChannelKind.DEMO)
    default_route(hook, demo)
    wc = WorkloadClassFactory(slug="spiky")
    SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99.9"), min_traffic=20)
    in_spike = lambda end: SPIKE <= end - MINUTE < SPIKE + SPIKE_MINUTES * MINUTE  # noqa: E731
    start, end = SPIKE - timedelta(hours=7), SPIKE + timedelta(hours=7, minutes=5)
    metrics.set(MetricKind.COMPLETED, lambda slug, at: 0.0 if in_spike(at) else 100.0)
    failed = lambda slug, at: 100.0 if in_spike(at) else 0.0  # noqa: E731
    metrics.set(MetricKind.FAILED, failed)
    dead_lettered_work(wc, failed, start=start, end=end)
    metrics_poll(now=end, window_minutes=int((end - start) / MINUTE))

    # The spike pages at +1 (and a ticket opens with it), the fast page ends at +15, the slow one
    # at +40 (down to the ticket), and the ticket ends once its 6-hour window is clear of the spike.
    for offset in (1, 2, 3, 15, 40, 41, 7 * 60 + 2):
        now = SPIKE + offset * MINUTE
        slo_alerts_evaluate(now=now)
        slo_alerts_evaluate(now=now)  # a second evaluation of the same numbers writes nothing
        notifications_deliver_due(now=now)
        notifications_deliver_due(now=now)

    incident = SloIncident.objects.get()
    assert incident.resolved_at == SPIKE + (7 * 60 + 2) * MINUTE
    bodies = [request.json() for request in receiver.wait_for(3)]
    assert len(receiver.requests) == 3
    assert [(b["event"], b["incident"]["severity"], b["incident"]["sequence"]) for b in bodies] == [
        ("trigger", "page", 1),
        ("update", "ticket", 2),
        ("resolve", "ticket", 3),
    ]
    assert {b["incident"]["key"] for b in bodies} == {incident.key}
    assert bodies[-1]["incident"]["state"] == "resolved" and bodies[-1]["alerts"] == []
    assert bodies[0]["summary"] == "[Opened] PAGE: spiky success ratio is burning its error budget"
    # Signed: HMAC of "<timestamp>.<body>" with the channel's secret.
    first = receiver.requests[0]
    stamp = int(first.headers[transport.TIMESTAMP_HEADER.lower()])
    assert first.headers[transport.SIGNATURE_HEADER.lower()] == transport.sign(SECRET, stamp, first.body)
    # The demo receiver (the page `make run` ships) got the same three.
    received = Notification.objects.filter(channel=demo).order_by("sequence")
    assert [(n.event, n.state) for n in received] == [("trigger", "sent"), ("update", "sent"), ("resolve", "sent")]
