"""Local metrics: gauges rebuilt from the queue tables on a hand-made timeline, worker reports
aggregated per step, the instance-count history, and the statement budget."""

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.workloads.providers.conftest import ALIASES, PROJECT, queue_spec
from workloads.providers.base import (
    LATENCY_BUCKET_BOUNDS,
    Distribution,
    MetricKind,
    MetricTarget,
    OutboundMessage,
    PoolSpec,
    ProviderError,
    WorkerReport,
)
from workloads.providers.local import LocalMetrics, LocalQueue, LocalWorkerPools
from workloads.providers.local.metrics import REPORT_BUCKET_COUNT_MAX
from workloads.providers.local.models import LocalDelivery, LocalMessage, LocalSubscription, LocalTopic


def _target(slug):
    spec = queue_spec(slug)
    return MetricTarget(
        slug=slug,
        subscription=spec.subscription,
        dead_letter_subscription=spec.dead_letter_subscription,
        worker_pool=f"projects/{PROJECT}/locations/local/workerPools/{slug}",
    )


def _values(points):
    return [(p.end, p.value) for p in points]


@pytest.mark.parametrize("alias", ALIASES)
def test_backlog_and_oldest_age_are_rebuilt_for_past_steps(alias, clock):
    queue, metrics = LocalQueue(using=alias, now=clock), LocalMetrics(using=alias, now=clock)
    t0 = clock.now
    spec = queue_spec("timeline", max_delivery_attempts=5, ack_deadline_seconds=600)
    queue.ensure_resources(spec)

    clock.now = t0 + timedelta(seconds=10)
    a, b, c = queue.publish(spec, [OutboundMessage(x) for x in (b"a", b"b", b"c")])
    leased = {m.message_id: m for m in queue.pull(spec, max_messages=3, timeout=0)}
    clock.now = t0 + timedelta(seconds=15)
    [poison] = queue.publish(spec, [OutboundMessage(b"poison")])
    for _ in range(5):  # dead-lettered at t0+20 s, before any step end
        clock.now = t0 + timedelta(seconds=20)
        [message] = queue.pull(spec, max_messages=1, timeout=0)
        assert message.message_id == poison
        queue.nack(spec, [message.ack_id])
    clock.now = t0 + timedelta(seconds=70)
    queue.ack(spec, [leased[a].ack_id])
    clock.now = t0 + timedelta(seconds=130)
    [d] = queue.publish(spec, [OutboundMessage(b"d")])
    queue.ack(spec, [leased[b].ack_id])
    late = queue_spec("late")
    clock.now = t0 + timedelta(seconds=150)
    queue.ensure_resources(late)
    clock.now = t0 + timedelta(seconds=190)
    [letter] = queue.peek_dead_letters(spec, max_messages=5)
    queue.ack_dead_letters(spec, [letter.ack_id])
    clock.now = t0 + timedelta(seconds=250)
    [leased_d] = queue.pull(spec, max_messages=1, timeout=0)
    queue.ack(spec, [leased[c].ack_id, leased_d.ack_id])
    assert leased_d.message_id == d

    clock.now = t0 + timedelta(seconds=400)
    targets = [_target("timeline"), _target("late"), _target("never-created")]
    window = {"start": t0, "end": t0 + timedelta(seconds=300), "step_seconds": 60}
    ends = [t0 + timedelta(seconds=s) for s in (60, 120, 180, 240, 300)]

    backlog = metrics.series(MetricKind.UNDELIVERED_MESSAGES, targets, **window)
    assert _values(backlog["timeline"]) == list(zip(ends, [3, 2, 2, 2, 0], strict=True))
    assert _values(backlog["late"]) == list(zip(ends[2:], [0, 0, 0], strict=True))  # absent before it existed
    assert "never-created" not in backlog

    oldest = metrics.series(MetricKind.OLDEST_UNACKED_AGE, targets, **window)
    assert _values(oldest["timeline"]) == list(zip(ends, [50, 110, 170, 230, 0], strict=True))

    dead = metrics.series(MetricKind.DEAD_LETTER_BACKLOG, targets, **window)
    assert _values(dead["timeline"]) == list(zip(ends, [1, 1, 1, 0, 0], strict=True))

    # Dead-lettered at t0+20 s and mirrored (acked) at t0+190 s: its age until then, 0 after.
    dead_age = metrics.series(MetricKind.DEAD_LETTER_OLDEST_AGE, targets, **window)
    assert _values(dead_age["timeline"]) == list(zip(ends, [40, 100, 160, 0, 0], strict=True))


def test_the_running_step_is_measured_now_and_later_steps_are_left_out(db, clock):
    queue, metrics = LocalQueue(now=clock), LocalMetrics(now=clock)
    t0 = clock.now
    spec = queue_spec("live")
    queue.ensure_resources(spec)
    clock.now = t0 + timedelta(seconds=10)
    queue.publish(spec, [OutboundMessage(b"x")])
    clock.now = t0 + timedelta(seconds=100)
    result = metrics.series(
        MetricKind.OLDEST_UNACKED_AGE, [_target("live")], start=t0, end=t0 + timedelta(minutes=5), step_seconds=60
    )
    assert _values(result["live"]) == [(t0 + timedelta(seconds=60), 50), (t0 + timedelta(seconds=120), 90)]


def _report(slug, end, *, completed=0, failed=0, records=0, tokens=0, latencies=(), instance="i1"):
    return WorkerReport(
        slug=slug,
        worker_pool=f"projects/{PROJECT}/locations/local/workerPools/{slug}",
        interval_start=end - timedelta(seconds=30),
        interval_end=end,
        completed=completed,
        failed=failed,
        records=records,
        tokens=tokens,
        latency=Distribution(count=len(latencies), sum=float(sum(latencies)), bucket_counts=_buckets(latencies)),
        instance_id=instance,
    )


@pytest.mark.parametrize("alias", ALIASES)
def test_worker_reports_add_up_per_step_and_class(alias, clock):
    metrics = LocalMetrics(using=alias, now=clock)
    t0 = clock.now
    at = lambda seconds: t0 + timedelta(seconds=seconds)  # noqa: E731
    metrics.write_worker_report(_report("ocr", at(30), completed=5, failed=1, records=50, tokens=900, latencies=[0.5]))
    metrics.write_worker_report(
        _report("ocr", at(60), completed=3, records=7, tokens=100, latencies=[0.5, 2.0, 2.1], instance="i2")
    )
    metrics.write_worker_report(_report("ocr", at(170), completed=2, failed=2, latencies=[40.0, 0.5]))
    metrics.write_worker_report(_report("index", at(61), completed=9, latencies=[0.02]))
    metrics.write_worker_report(_report("ocr", at(301), completed=100))  # after the window
    clock.now = at(600)
    targets = [_target("ocr"), _target("index"), _target("quiet")]
    window = {"start": t0, "end": at(300), "step_seconds": 60}

    def series(metric):
        result = metrics.series(metric, targets, **window)
        assert "quiet" not in result  # no reports: gaps, never zeros
        return {slug: _values(points) for slug, points in result.items()}

    assert series(MetricKind.COMPLETED) == {"ocr": [(at(60), 8), (at(180), 2)], "index": [(at(120), 9)]}
    assert series(MetricKind.FAILED) == {"ocr": [(at(60), 1), (at(180), 2)], "index": [(at(120), 0)]}
    assert series(MetricKind.RECORDS)["ocr"] == [(at(60), 57), (at(180), 0)]
    assert series(MetricKind.TOKENS)["ocr"] == [(at(60), 1000), (at(180), 0)]

    latency = metrics.series(MetricKind.COMPLETION_LATENCY, targets, **window)
    assert [point.end for point in latency["ocr"]] == [at(60), at(180)]
    first, second = (point.value for point in latency["ocr"])
    assert (first.count, first.sum) == (4, pytest.approx(5.1))  # merged across two instances
    assert first.bucket_counts == _buckets([0.5, 0.5, 2.0, 2.1])
    assert (second.count, second.bucket_counts) == (2, _buckets([40.0, 0.5]))
    assert latency["index"][0].value.bucket_counts == _buckets([0.02])


def _buckets(latencies):
    counts = [0] * (len(LATENCY_BUCKET_BOUNDS) + 1)
    for value in latencies:
        counts[sum(value >= bound for bound in LATENCY_BUCKET_BOUNDS)] += 1
    return tuple(counts)


def test_a_report_with_other_buckets_is_refused(db, clock):
    report = _report("ocr", clock.now, latencies=[1.0])
    odd = Distribution(count=1, sum=1.0, bucket_counts=(0, 1, 0), bounds=(1.0, 2.0))
    with pytest.raises(ProviderError) as caught:
        LocalMetrics().write_worker_report(replace(report, latency=odd))
    assert caught.value.permanent and caught.value.code == "INVALID_ARGUMENT"


@pytest.mark.parametrize("alias", ALIASES)
def test_a_report_s_bucket_counts_are_at_most_an_integer_and_their_sums_are_not(alias, clock):
    """Reports' bucket counts are summed as PostgreSQL integers into a bigint: a larger count is
    refused when written, and two counts at the limit add up past it."""
    metrics = LocalMetrics(using=alias, now=clock)
    t0 = clock.now
    most = REPORT_BUCKET_COUNT_MAX
    counts = (most,) + (0,) * len(LATENCY_BUCKET_BOUNDS)
    report = replace(
        _report("ocr", t0 + timedelta(seconds=30)),
        latency=Distribution(count=most, sum=float(most), bucket_counts=counts),
    )
    with pytest.raises(ProviderError) as caught:
        too_many = (most + 1,) + counts[1:]
        metrics.write_worker_report(replace(report, latency=replace(report.latency, bucket_counts=too_many)))
    assert caught.value.permanent and caught.value.code == "INVALID_ARGUMENT"
    metrics.write_worker_report(report)
    metrics.write_worker_report(replace(report, instance_id="i2"))
    clock.now = t0 + timedelta(minutes=5)

    latency = metrics.series(MetricKind.COMPLETION_LATENCY, [_target("ocr")], start=t0, end=clock.now, step_seconds=60)
    (point,) = latency["ocr"]
    assert point.value.bucket_counts[0] == 2 * most and point.value.count == 2 * most


def test_instance_count_is_the_time_weighted_mean_of_the_pool_history(db, clock):
    pools, metrics = LocalWorkerPools(now=clock), LocalMetrics(now=clock)
    t0 = clock.now
    steady = PoolSpec(slug="steady", worker_pool=_target("steady").worker_pool)
    clock.now = t0 - timedelta(hours=1)
    pools.ensure(steady, initial_instances=2)
    clock.now = t0 + timedelta(seconds=90)
    pools.set_instances(steady, 4, reason="backlog")
    clock.now = t0 + timedelta(seconds=150)
    pools.ensure(PoolSpec(slug="new", worker_pool=_target("new").worker_pool), initial_instances=1)
    clock.now = t0 + timedelta(seconds=600)
    result = metrics.series(
        MetricKind.INSTANCE_COUNT,
        [_target("steady"), _target("new"), _target("absent")],
        start=t0,
        end=t0 + timedelta(seconds=180),
        step_seconds=60,
    )
    ends = [t0 + timedelta(seconds=s) for s in (60, 120, 180)]
    assert _values(result["steady"]) == list(zip(ends, [2, 3, 4], strict=True))
    assert _values(result["new"]) == [(ends[2], 1)]
    assert "absent" not in result


def test_series_cost_does_not_grow_with_classes(db, clock):
    metrics = LocalMetrics(now=clock)
    t0 = clock.now
    topic = LocalTopic.objects.create(name=f"projects/{PROJECT}/topics/all", created_at=t0 - timedelta(hours=1))
    subscriptions = LocalSubscription.objects.bulk_create(
        [
            LocalSubscription(
                name=_target(f"cls-{i:03d}").subscription,
                topic=topic,
                created_at=t0 - timedelta(hours=12),
                updated_at=t0 - timedelta(hours=12),
            )
            for i in range(200)
        ]
    )
    messages = LocalMessage.objects.bulk_create(
        [LocalMessage(topic=topic, data=b"", published_at=t0 + timedelta(seconds=i % 600)) for i in range(50)]
    )
    # 200 classes x 50 messages, half of them acked a minute after publishing.
    LocalDelivery.objects.bulk_create(
        [
            LocalDelivery(
                subscription=subscription,
                message=message,
                published_at=message.published_at,
                visible_at=message.published_at,
                acked_at=message.published_at + timedelta(minutes=1) if n % 2 else None,
            )
            for subscription in subscriptions
            for n, message in enumerate(messages)
        ],
        batch_size=2000,
    )
    clock.now = t0 + timedelta(minutes=10)
    targets = [_target(f"cls-{i:03d}") for i in range(200)]
    for steps, budget in ((10, 1), (600, 2)):
        for metric in (MetricKind.UNDELIVERED_MESSAGES, MetricKind.OLDEST_UNACKED_AGE):
            # The cost is counted in statements, not seconds: a wall-clock bound failed on a busy
            # machine (12.7 s against 10 with the suite on 4 workers); bench/ measures speed.
            before = metrics.statements
            result = metrics.series(metric, targets, start=clock.now - timedelta(minutes=steps), end=clock.now)
            assert metrics.statements - before == budget, (metric, steps)
            assert len(result) == 200 and all(len(points) == steps for points in result.values())
    backlog = metrics.series(MetricKind.UNDELIVERED_MESSAGES, targets[:1], start=t0, end=clock.now)
    assert backlog["cls-000"][-1].value == 25  # the unacked half
