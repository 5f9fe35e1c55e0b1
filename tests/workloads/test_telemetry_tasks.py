"""The beat ticks: scheduled from settings, registered with Celery, and calling the services."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from controlplane.celery import app
from tests.factories import SloFactory
from tests.workloads.telemetry_doubles import FakeMetrics, installed_metrics
from workloads import tasks
from workloads.models import MetricRollup, PollRun, SloStatus
from workloads.providers.base import MetricKind
from workloads.selectors.rollups import POLLED_METRICS


def test_the_beat_schedule_runs_the_three_telemetry_ticks():
    app.loader.import_default_modules()
    schedule = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["workloads.tasks.telemetry_poll"] == 60
    assert schedule["workloads.tasks.telemetry_alerts_evaluate"] == 60
    assert schedule["workloads.tasks.telemetry_downsample"] == 3600
    assert {
        "workloads.tasks.telemetry_poll",
        "workloads.tasks.telemetry_alerts_evaluate",
        "workloads.tasks.telemetry_downsample",
    } <= set(app.tasks)


def test_the_tasks_call_the_services_with_the_current_time(db):
    slo = SloFactory()
    with installed_metrics(FakeMetrics()) as metrics:
        metrics.set(MetricKind.COMPLETED, lambda slug, end: 3.0)
        tasks.telemetry_poll()
    assert PollRun.objects.filter(ok=True).count() == len(POLLED_METRICS)  # one run per metric
    assert MetricRollup.objects.filter(resolution="minute").count() == settings.TELEMETRY_POLL_WINDOW_MINUTES
    tasks.telemetry_alerts_evaluate()
    status = SloStatus.objects.get(slo=slo)
    assert timezone.now() - status.evaluated_at < timedelta(minutes=1) and status.total == 30
    tasks.telemetry_downsample()  # nothing old enough yet: it must not touch recent minutes
    assert MetricRollup.objects.filter(resolution="minute").count() == settings.TELEMETRY_POLL_WINDOW_MINUTES
