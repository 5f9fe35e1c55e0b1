"""The demo's current-minute poll, through the real local provider: the minute under way shows at
once, and the next poll replaces it (never adds to it)."""

from datetime import timedelta

from django.utils import timezone

from tests.factories import WorkloadClassFactory
from workloads.models import ClassTelemetry, MetricRollup, Resolution
from workloads.providers import get_providers
from workloads.providers.base import OutboundMessage
from workloads.providers.specs import queue_spec
from workloads.services.polling import metrics_poll


def test_the_minute_under_way_is_polled_and_then_replaced(db, settings):
    settings.TELEMETRY_POLL_CURRENT_MINUTE = True
    workload_class = WorkloadClassFactory(slug="now-class")
    queue = get_providers().queue
    spec = queue_spec(workload_class)
    queue.ensure_resources(spec)
    queue.publish(spec, [OutboundMessage(f"m{i}".encode()) for i in range(3)])
    now = timezone.now()
    this_minute = now.replace(second=0, microsecond=0)

    metrics_poll(now=now)
    row = MetricRollup.objects.get(
        workload_class=workload_class, resolution=Resolution.MINUTE, bucket_start=this_minute
    )
    assert row.backlog == 3
    telemetry = ClassTelemetry.objects.get(workload_class=workload_class)
    assert telemetry.backlog == 3 and telemetry.newest_sample_at <= now  # never "from the future"

    queue.publish(spec, [OutboundMessage(b"m3")])
    metrics_poll(now=now + timedelta(seconds=5))
    row.refresh_from_db()
    assert row.backlog == 4  # replaced by the fuller sample, not 3 + 4


def test_by_default_only_whole_minutes_are_polled(db, settings):
    settings.TELEMETRY_POLL_CURRENT_MINUTE = False
    workload_class = WorkloadClassFactory(slug="whole-minutes")
    queue = get_providers().queue
    spec = queue_spec(workload_class)
    queue.ensure_resources(spec)
    queue.publish(spec, [OutboundMessage(b"m")])
    now = timezone.now()
    metrics_poll(now=now)
    assert not MetricRollup.objects.filter(
        workload_class=workload_class, bucket_start=now.replace(second=0, microsecond=0)
    ).exists()
