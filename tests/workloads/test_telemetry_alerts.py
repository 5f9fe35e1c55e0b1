"""SLO status and burn-rate alerts, evaluated from rollups written by a real poll."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.factories import SloFactory, WorkloadClassFactory
from tests.workloads.telemetry_doubles import FakeMetrics, dead_lettered_work, distribution, installed_metrics
from workloads.models import SloAlert, SloStatus
from workloads.providers.base import MetricKind
from workloads.services.polling import metrics_poll
from workloads.services.rollups import rollups_downsample
from workloads.services.slo_evaluation import slo_alerts_evaluate

MINUTE = timedelta(minutes=1)
# The spike starts at a minute that is not on the hour, so windows cross hour boundaries (and
# read hourly rows for whole hours plus minute rows for the edges) while the timeline runs.
SPIKE = datetime(2026, 3, 2, 12, 37, tzinfo=UTC)
SPIKE_MINUTES = 10


@pytest.fixture
def metrics():
    with installed_metrics(FakeMetrics()) as fake:
        yield fake


def poll_everything(*, start: datetime, end: datetime):
    """One poll whose window covers [start, end): rollups for the whole timeline at once."""
    metrics_poll(now=end, window_minutes=int((end - start) / MINUTE))


def fail_for_good(metrics, workload_class, per_minute, *, start: datetime, end: datetime):
    """Failures with no retry: each failed attempt is a unit of work dead-lettered in that minute."""
    metrics.set(MetricKind.FAILED, per_minute)
    dead_lettered_work(workload_class, per_minute, start=start, end=end)


def test_a_failure_spike_pages_within_the_short_window_and_resolves(db, metrics):
    wc = WorkloadClassFactory(slug="spiky")
    slo = SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99.9"), min_traffic=20)
    in_spike = lambda end: SPIKE <= end - MINUTE < SPIKE + SPIKE_MINUTES * MINUTE  # noqa: E731
    metrics.set(MetricKind.COMPLETED, lambda slug, end: 0.0 if in_spike(end) else 100.0)
    timeline = {"start": SPIKE - timedelta(hours=7), "end": SPIKE + 50 * MINUTE}
    fail_for_good(metrics, wc, lambda slug, end: 100.0 if in_spike(end) else 0.0, **timeline)
    poll_everything(**timeline)

    transitions = []
    for offset in range(-3, 45):
        summary = slo_alerts_evaluate(now=SPIKE + offset * MINUTE)
        transitions += [("open", a.rule, offset) for a in summary.opened]
        transitions += [("resolve", a.rule, offset) for a in summary.resolved]

    # Hand-computed with a 0.1 % budget and 100 jobs a minute:
    # page-1h-5m  opens at +1 (1h: 100/6000 = 1.7 % > 1.44 %; 5m: 20 %) and resolves at +15, the
    #             first evaluation whose 5-minute window no longer holds a spike minute;
    # page-6h-30m opens at +3 (6h: 300/36000 = 0.83 % > 0.6 %; at +2 only 0.56 %) and resolves at +40;
    # ticket      opens at +1 (3d and 6h both above 0.1 %) and stays open for hours.
    assert transitions == [
        ("open", "page-1h-5m", 1),
        ("open", "ticket-3d-6h", 1),
        ("open", "page-6h-30m", 3),
        ("resolve", "page-1h-5m", 15),
        ("resolve", "page-6h-30m", 40),
    ]
    fast = SloAlert.objects.get(slo=slo, rule="page-1h-5m")
    assert (fast.opened_at, fast.resolved_at) == (SPIKE + MINUTE, SPIKE + 15 * MINUTE)
    assert fast.severity == "page" and fast.opened_short_burn_rate == pytest.approx(200)
    assert fast.peak_short_burn_rate == pytest.approx(1000)  # 5 minutes of 100 % failures
    ticket = SloAlert.objects.get(slo=slo, rule="ticket-3d-6h")
    assert ticket.is_active and ticket.severity == "ticket"


def test_a_quiet_class_with_a_handful_of_failures_does_not_page(db, metrics):
    wc = WorkloadClassFactory()
    SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99"), min_traffic=20)
    # Two jobs in the last hour, both failed: a 100 % failure rate on no traffic.
    metrics.add(MetricKind.FAILED, wc.slug, SPIKE - 10 * MINUTE, 1.0)
    metrics.add(MetricKind.FAILED, wc.slug, SPIKE - 2 * MINUTE, 1.0)
    failed_minutes = {SPIKE - 10 * MINUTE, SPIKE - 2 * MINUTE}
    dead_lettered_work(
        wc, lambda slug, end: 1 if end in failed_minutes else 0, start=SPIKE - timedelta(hours=1), end=SPIKE
    )
    poll_everything(start=SPIKE - timedelta(hours=1), end=SPIKE)
    slo_alerts_evaluate(now=SPIKE)
    assert not SloAlert.objects.exists()
    status = SloStatus.objects.get(slo__workload_class=wc)
    assert status.windows["1h"]["total"] == 2 and status.windows["1h"]["burn_rate"] == pytest.approx(100)


def test_status_exactly_at_target(db, metrics):
    wc = WorkloadClassFactory()
    slo = SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99"))
    metrics.set(MetricKind.COMPLETED, lambda slug, end: 99.0)
    fail_for_good(metrics, wc, lambda slug, end: 1.0, start=SPIKE - 10 * MINUTE, end=SPIKE)
    poll_everything(start=SPIKE - 10 * MINUTE, end=SPIKE)
    slo_alerts_evaluate(now=SPIKE)

    status = SloStatus.objects.get(slo=slo)
    assert (status.good, status.total) == (990, 1000)
    assert status.attainment == pytest.approx(0.99)
    assert status.met is True
    assert status.budget_allowed == pytest.approx(10)
    assert status.budget_consumed == 10
    assert status.budget_remaining == 0 and status.budget_remaining_percent == 0
    assert status.exhaustion_seconds == 0
    assert status.windows["5m"] == {"good": 495.0, "total": 500.0, "burn_rate": pytest.approx(1.0)}


def test_status_with_the_budget_exhausted(db, metrics):
    wc = WorkloadClassFactory()
    slo = SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99.5"))
    metrics.set(MetricKind.COMPLETED, lambda slug, end: 195.0)
    fail_for_good(metrics, wc, lambda slug, end: 5.0, start=SPIKE - 10 * MINUTE, end=SPIKE)
    poll_everything(start=SPIKE - 10 * MINUTE, end=SPIKE)
    slo_alerts_evaluate(now=SPIKE)

    status = SloStatus.objects.get(slo=slo)
    # 2000 jobs, 50 failed; a 0.5 % budget allows 10: 40 over, -400 % left.
    assert status.met is False
    assert status.budget_consumed == 50 and status.budget_remaining == pytest.approx(-40)
    assert status.budget_remaining_percent == pytest.approx(-400)


def test_the_success_ratio_counts_each_unit_of_work_once_by_its_final_outcome(db, metrics):
    # 11 units of work in 10 minutes: 8 completed (7 of them after a failed attempt), 3 dead-lettered
    # after 5 attempts each: 30 attempts, 22 of them failed.
    wc = WorkloadClassFactory()
    slo = SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99"))
    metrics.add(MetricKind.COMPLETED, wc.slug, SPIKE - 5 * MINUTE, 8.0)
    metrics.add(MetricKind.FAILED, wc.slug, SPIKE - 5 * MINUTE, 22.0)
    dead_lettered_work(
        wc, lambda slug, end: 3 if end == SPIKE - 5 * MINUTE else 0, start=SPIKE - 10 * MINUTE, end=SPIKE
    )
    poll_everything(start=SPIKE - 10 * MINUTE, end=SPIKE)
    slo_alerts_evaluate(now=SPIKE)

    status = SloStatus.objects.get(slo=slo)
    assert (status.good, status.total) == (8, 11)  # not "8 good of 30 events"
    assert status.budget_consumed == 3
    assert status.attempt_failure_ratio == pytest.approx(22 / 30)  # the attempts: a figure of their own


def test_a_replayed_dead_letter_is_not_a_failure_until_it_fails_again(db, metrics):
    wc = WorkloadClassFactory()
    slo = SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99"))
    metrics.add(MetricKind.COMPLETED, wc.slug, SPIKE - 5 * MINUTE, 10.0)
    dead_lettered_work(
        wc, lambda slug, end: 2 if end == SPIKE - 5 * MINUTE else 0, start=SPIKE - 10 * MINUTE, end=SPIKE
    )
    from workloads.models import DeadLetter

    DeadLetter.objects.filter(pk=DeadLetter.objects.first().pk).update(status="replayed")  # and completed
    poll_everything(start=SPIKE - 10 * MINUTE, end=SPIKE)
    slo_alerts_evaluate(now=SPIKE)
    assert (SloStatus.objects.get(slo=slo).good, SloStatus.objects.get(slo=slo).total) == (10, 11)


def test_status_without_traffic_keeps_the_whole_budget(db, metrics):
    slo = SloFactory(kind="success_ratio", target_percent=Decimal("99"))
    slo_alerts_evaluate(now=SPIKE)
    status = SloStatus.objects.get(slo=slo)
    assert status.total == 0 and status.attainment is None and status.met
    assert status.budget_remaining_percent == 100 and status.exhaustion_seconds is None
    assert not SloAlert.objects.exists()


def test_queue_age_counts_good_minutes_and_latency_counts_good_completions(db, metrics):
    wc = WorkloadClassFactory()
    age_slo = SloFactory(
        workload_class=wc,
        kind="queue_age",
        percentile=Decimal("95"),
        threshold_seconds=60,
        target_percent=Decimal("90"),
    )
    latency_slo = SloFactory(
        workload_class=wc,
        kind="completion_latency",
        percentile=Decimal("95"),
        threshold_seconds=1.0,
        target_percent=Decimal("50"),
    )
    # 10 minutes: 3 with the oldest message older than 60 s; each minute 2 fast jobs and 1 slow.
    slow_minutes = {SPIKE - 2 * MINUTE, SPIKE - 5 * MINUTE, SPIKE - 9 * MINUTE}
    metrics.set(MetricKind.OLDEST_UNACKED_AGE, lambda slug, end: 500.0 if end in slow_minutes else 5.0)
    metrics.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: distribution([0.5, 0.5, 2.0]))
    poll_everything(start=SPIKE - 10 * MINUTE, end=SPIKE)
    slo_alerts_evaluate(now=SPIKE)

    age = SloStatus.objects.get(slo=age_slo)
    assert (age.good, age.total) == (7, 10)
    assert age.met is False and age.budget_allowed == pytest.approx(1) and age.budget_consumed == 3
    latency = SloStatus.objects.get(slo=latency_slo)
    assert (latency.good, latency.total) == (20, 30)


def test_the_budget_window_reads_hourly_rollups_once_minutes_are_folded(db, metrics, settings):
    settings.TELEMETRY_MINUTE_RETENTION_DAYS = 1
    wc = WorkloadClassFactory()
    age_slo = SloFactory(
        workload_class=wc,
        kind="queue_age",
        percentile=Decimal("95"),
        threshold_seconds=60,
        target_percent=Decimal("99"),
    )
    ok_slo = SloFactory(workload_class=wc, kind="success_ratio", target_percent=Decimal("99"))
    old = SPIKE - timedelta(days=3)
    metrics.set(MetricKind.OLDEST_UNACKED_AGE, lambda slug, end: 500.0 if end.minute % 4 == 0 else 5.0)
    metrics.set(MetricKind.COMPLETED, lambda slug, end: 10.0)
    fail_for_good(
        metrics, wc, lambda slug, end: 1.0 if end.minute % 10 == 0 else 0.0, start=old, end=old + timedelta(hours=2)
    )
    poll_everything(start=old, end=old + timedelta(hours=2))
    slo_alerts_evaluate(now=SPIKE)
    before = {s.slo_id: (s.good, s.total) for s in SloStatus.objects.all()}

    summary = rollups_downsample(now=SPIKE)  # the two hours are now older than the minute retention
    assert summary.minutes_deleted == 120
    slo_alerts_evaluate(now=SPIKE)
    after = {s.slo_id: (s.good, s.total) for s in SloStatus.objects.all()}
    assert after == before
    assert before[age_slo.pk] == (90, 120) and before[ok_slo.pk] == (1200, 1212)


def test_a_changed_threshold_rejudges_old_rollups_minutes_and_hours(db, metrics, settings):
    settings.TELEMETRY_MINUTE_RETENTION_DAYS = 1
    wc = WorkloadClassFactory()
    age_slo = SloFactory(
        workload_class=wc,
        kind="queue_age",
        percentile=Decimal("95"),
        threshold_seconds=60,
        target_percent=Decimal("90"),
    )
    # Two days ago (folded into hours) and the last hour: every third minute at 90 s, the rest at 30 s.
    metrics.set(MetricKind.OLDEST_UNACKED_AGE, lambda slug, end: 90.0 if end.minute % 3 == 0 else 30.0)
    metrics.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: distribution([0.5, 0.5, 2.0]))
    poll_everything(start=SPIKE - timedelta(days=2), end=SPIKE - timedelta(days=2) + timedelta(hours=1))
    poll_everything(start=SPIKE - timedelta(hours=1), end=SPIKE)
    rollups_downsample(now=SPIKE)
    assert slo_alerts_evaluate(now=SPIKE).rejudged_classes == []
    assert SloStatus.objects.get(slo=age_slo).good == 80  # 2 x 40 minutes at or under 60 s

    age_slo.threshold_seconds = 120
    age_slo.save()
    latency_slo = SloFactory(
        workload_class=wc,
        kind="completion_latency",
        percentile=Decimal("95"),
        threshold_seconds=1.0,
        target_percent=Decimal("50"),
    )
    summary = slo_alerts_evaluate(now=SPIKE)

    assert summary.rejudged_classes == [wc.pk]
    assert SloStatus.objects.get(slo=age_slo).good == 120
    assert (SloStatus.objects.get(slo=latency_slo).good, SloStatus.objects.get(slo=latency_slo).total) == (240, 360)
    assert slo_alerts_evaluate(now=SPIKE).rejudged_classes == []  # recorded: not rejudged again
