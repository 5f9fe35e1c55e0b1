"""The Cloud Monitoring adapter against the in-process Monitoring fake, through the real
MetricServiceClient: the exact ListTimeSeries requests, paging, the worker kit's custom metrics
(written and read back), retries and permission errors."""

import bisect
from datetime import UTC, datetime, timedelta

import pytest
from google.api import distribution_pb2, metric_pb2
from google.cloud import monitoring_v3

from workloads.providers.base import (
    LATENCY_BUCKET_BOUNDS,
    Distribution,
    MetricKind,
    MetricTarget,
    ProviderError,
    WorkerReport,
)
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.monitoring import (
    MAX_FILTER_CHARS,
    CloudMonitoringMetrics,
    instance_label,
    to_distribution,
)

PROJECT = "demo-proj"
FAST = Backoff(initial=0.01, maximum=0.05, deadline=5.0)
BACKLOG = "pubsub.googleapis.com/subscription/num_undelivered_messages"
AGE = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
INSTANCES = "run.googleapis.com/container/instance_count"
END = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = END - timedelta(minutes=10)
Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer


def target(slug):
    return MetricTarget(
        slug=slug,
        subscription=f"projects/{PROJECT}/subscriptions/{slug}-worker",
        dead_letter_subscription=f"projects/{PROJECT}/subscriptions/{slug}-dead-letter",
        worker_pool=f"projects/{PROJECT}/locations/us-central1/workerPools/{slug}",
    )


def at(minutes_before_end, seconds=0):
    return (END - timedelta(minutes=minutes_before_end, seconds=seconds)).timestamp()


def seed_subscription(fake, subscription_id, points, metric=BACKLOG):
    fake.seed(
        metric,
        resource_type="pubsub_subscription",
        resource_labels={"project_id": PROJECT, "subscription_id": subscription_id},
        points=points,
    )


@pytest.fixture
def metrics(gcp_fakes, fake_monitoring):
    return CloudMonitoringMetrics(gcp_fakes.monitoring_client, project=PROJECT, backoff=FAST)


def histogram(*samples):
    counts = [0] * (len(LATENCY_BUCKET_BOUNDS) + 1)
    for value in samples:
        counts[bisect.bisect_right(LATENCY_BUCKET_BOUNDS, value)] += 1
    return Distribution(count=len(samples), sum=sum(samples), bucket_counts=tuple(counts))


def report(slug, *, end, instance="i-1", completed=3, failed=1, records=30, tokens=900, samples=(0.2, 0.4, 1.5)):
    return WorkerReport(
        slug=slug,
        worker_pool=f"projects/{PROJECT}/locations/us-central1/workerPools/{slug}",
        interval_start=end - timedelta(seconds=60),
        interval_end=end,
        completed=completed,
        failed=failed,
        records=records,
        tokens=tokens,
        latency=histogram(*samples),
        instance_id=instance,
    )


# --- reading -----------------------------------------------------------------------------------------------
def test_the_list_request_is_exactly_what_monitoring_needs(metrics, fake_monitoring):
    metrics.series(
        MetricKind.OLDEST_UNACKED_AGE,
        [target("render"), target("index")],
        start=START,
        end=END + timedelta(seconds=25),  # not on a step boundary: the request's end is
        step_seconds=60,
    )
    [request] = fake_monitoring.list_requests
    assert request.name == f"projects/{PROJECT}"
    assert request.filter == (
        f'metric.type = "{AGE}" AND resource.type = "pubsub_subscription" AND '
        'resource.labels.subscription_id = one_of("index-worker", "render-worker")'
    )
    assert request.interval.start_time == START
    assert request.interval.end_time == END
    assert request.aggregation.alignment_period == timedelta(seconds=60)
    assert request.aggregation.per_series_aligner == Aligner.ALIGN_MAX
    assert request.aggregation.cross_series_reducer == Reducer.REDUCE_MAX
    assert list(request.aggregation.group_by_fields) == ["resource.labels.subscription_id"]
    assert request.view == monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL


@pytest.mark.parametrize(
    ("metric", "label", "value", "aligner", "reducer"),
    [
        (MetricKind.UNDELIVERED_MESSAGES, "resource.labels.subscription_id", "render-worker", "MAX", "SUM"),
        (MetricKind.DEAD_LETTER_BACKLOG, "resource.labels.subscription_id", "render-dead-letter", "MAX", "SUM"),
        (MetricKind.DEAD_LETTER_OLDEST_AGE, "resource.labels.subscription_id", "render-dead-letter", "MAX", "MAX"),
        (MetricKind.INSTANCE_COUNT, "resource.labels.worker_pool_name", "render", "MEAN", "SUM"),
        (MetricKind.COMPLETION_LATENCY, "metric.labels.class", "render", "SUM", "SUM"),
        (MetricKind.COMPLETED, "metric.labels.class", "render", "SUM", "SUM"),
        (MetricKind.TOKENS, "metric.labels.class", "render", "SUM", "SUM"),
    ],
)
def test_each_metric_filters_and_groups_on_the_right_label(
    metrics, fake_monitoring, metric, label, value, aligner, reducer
):
    metrics.series(metric, [target("render")], start=START, end=END, step_seconds=300)
    [request] = fake_monitoring.list_requests
    assert f'{label} = one_of("{value}")' in request.filter
    assert list(request.aggregation.group_by_fields) == [label]
    assert request.aggregation.per_series_aligner == Aligner[f"ALIGN_{aligner}"]
    assert request.aggregation.cross_series_reducer == Reducer[f"REDUCE_{reducer}"]
    assert request.aggregation.alignment_period == timedelta(seconds=300)


def test_points_map_back_to_classes_oldest_first_with_gaps_left_out(metrics, fake_monitoring):
    seed_subscription(fake_monitoring, "render-worker", [(at(9, 30), 40), (at(8, 10), 55), (at(2, 5), 12), (at(0), 3)])
    seed_subscription(fake_monitoring, "index-worker", [(at(5, 1), 8)])
    seed_subscription(fake_monitoring, "someone-elses-worker", [(at(1), 999)])
    result = metrics.series(MetricKind.UNDELIVERED_MESSAGES, [target("render"), target("index")], start=START, end=END)
    render = result["render"]
    assert [p.end for p in render] == [END - timedelta(minutes=m) for m in (9, 8, 2, 0)]  # gaps stay gaps
    assert [p.value for p in render] == [40.0, 55.0, 12.0, 3.0]
    assert [(p.end, p.value) for p in result["index"]] == [(END - timedelta(minutes=5), 8.0)]
    assert set(result) == {"render", "index"}


def test_instance_count_sums_the_states_of_a_pool(metrics, fake_monitoring):
    for state, count in (("active", 3), ("idle", 1)):
        fake_monitoring.seed(
            INSTANCES,
            resource_type="cloud_run_worker_pool",
            resource_labels={"project_id": PROJECT, "location": "us-central1", "worker_pool_name": "render"},
            metric_labels={"state": state},
            points=[(at(1, 30), count), (at(1, 0), count + 2)],
        )
    result = metrics.series(MetricKind.INSTANCE_COUNT, [target("render")], start=START, end=END)
    # per state the mean over the minute (3 and 4, 1 and 2), summed over states
    assert [(p.end, p.value) for p in result["render"]] == [(END - timedelta(minutes=1), 4.0 + 2.0)]


def test_two_hundred_classes_cost_one_call_with_a_filter_under_the_limit(metrics, fake_monitoring):
    targets = [target(f"team-{i:03d}-pipeline") for i in range(200)]
    for i in range(0, 200, 7):
        seed_subscription(fake_monitoring, f"team-{i:03d}-pipeline-worker", [(at(1), i)])
    seed_subscription(fake_monitoring, "team-999-pipeline-worker", [(at(1), 5)])  # matched by the looser filter
    result = metrics.series(MetricKind.UNDELIVERED_MESSAGES, targets, start=START, end=END)
    [request] = fake_monitoring.list_requests
    assert len(request.filter) <= MAX_FILTER_CHARS
    assert "monitoring.regex.full_match" in request.filter  # one_of of 200 ids would not fit
    assert set(result) == {f"team-{i:03d}-pipeline" for i in range(0, 200, 7)}
    assert result["team-196-pipeline"][-1].value == 196.0


def test_pages_are_followed(metrics, fake_monitoring):
    for i in range(5):
        seed_subscription(fake_monitoring, f"c{i}-worker", [(at(3), i), (at(2), i), (at(1), i)])
    fake_monitoring.page_size = 4  # points per page: one series of 3 points per page
    result = metrics.series(MetricKind.UNDELIVERED_MESSAGES, [target(f"c{i}") for i in range(5)], start=START, end=END)
    assert len(fake_monitoring.list_requests) == 5
    assert [r.page_token for r in fake_monitoring.list_requests] == ["", "1", "2", "3", "4"]
    assert {slug: len(points) for slug, points in result.items()} == {f"c{i}": 3 for i in range(5)}


def test_unavailable_twice_then_success(metrics, fake_monitoring):
    seed_subscription(fake_monitoring, "render-worker", [(at(1), 7)])
    fake_monitoring.fail_next("UNAVAILABLE", 2)
    result = metrics.series(MetricKind.UNDELIVERED_MESSAGES, [target("render")], start=START, end=END)
    assert len(fake_monitoring.list_requests) == 3
    assert result["render"][-1].value == 7.0


def test_permission_denied_on_read_names_the_viewer_role(metrics, fake_monitoring):
    fake_monitoring.fail_next("PERMISSION_DENIED", 1)
    with pytest.raises(ProviderError) as caught:
        metrics.series(MetricKind.UNDELIVERED_MESSAGES, [target("render")], start=START, end=END)
    assert caught.value.permanent
    assert f"roles/monitoring.viewer on projects/{PROJECT}" in caught.value.message
    assert len(fake_monitoring.list_requests) == 1


def test_a_custom_metric_no_worker_wrote_yet_is_no_data_not_an_error(metrics, fake_monitoring):
    # A new project or class: Monitoring has no descriptor for the worker kit's metrics until the
    # first report, and answers NOT_FOUND "Cannot find metric(s) that match type".
    for metric in (MetricKind.COMPLETED, MetricKind.FAILED, MetricKind.COMPLETION_LATENCY):
        assert metrics.series(metric, [target("render")], start=START, end=END) == {}
    assert len(fake_monitoring.list_requests) == 3  # asked once each, not retried
    # Once a worker reported, the same call reads its points.
    metrics.write_worker_report(report("render", end=END - timedelta(minutes=2)))
    assert metrics.series(MetricKind.COMPLETED, [target("render")], start=START, end=END)["render"][-1].value == 3


def test_other_not_found_errors_stay_permanent(metrics, fake_monitoring):
    fake_monitoring.fail_next("NOT_FOUND", 1)
    with pytest.raises(ProviderError) as caught:
        metrics.series(MetricKind.UNDELIVERED_MESSAGES, [target("render")], start=START, end=END)
    assert caught.value.permanent and caught.value.code == "NOT_FOUND"


def test_dead_letter_oldest_age_reads_the_dead_letter_subscription(metrics, fake_monitoring):
    seed_subscription(fake_monitoring, "render-dead-letter", [(at(3), 7200), (at(1), 7320)], metric=AGE)
    seed_subscription(fake_monitoring, "render-worker", [(at(1), 5)], metric=AGE)
    result = metrics.series(MetricKind.DEAD_LETTER_OLDEST_AGE, [target("render")], start=START, end=END)
    assert [point.value for point in result["render"]] == [7200.0, 7320.0]


def test_no_targets_no_call(metrics, fake_monitoring):
    assert metrics.series(MetricKind.COMPLETED, [], start=START, end=END) == {}
    assert fake_monitoring.list_requests == []


# --- writing ------------------------------------------------------------------------------------------------
def test_a_worker_report_becomes_gauge_series_with_the_histogram_intact(metrics, fake_monitoring):
    sent = report("render", end=END)
    metrics.write_worker_report(sent)
    [request] = fake_monitoring.create_requests
    assert request.name == f"projects/{PROJECT}"
    by_type = {ts.metric.type.rsplit("/", 1)[1]: ts for ts in request.time_series}
    assert set(by_type) == {"completed", "failed", "records", "tokens", "completion_latency"}
    for ts in request.time_series:
        assert ts.metric.type.startswith("custom.googleapis.com/controlplane/")
        assert dict(ts.metric.labels) == {"class": "render", "instance_id": instance_label("i-1", slots=64)}
        assert ts.resource.type == "global" and ts.resource.labels["project_id"] == PROJECT
        assert ts.metric_kind == metric_pb2.MetricDescriptor.MetricKind.GAUGE
        [point] = ts.points
        assert point.interval.end_time == END
    assert [by_type[k].points[0].value.int64_value for k in ("completed", "failed", "records", "tokens")] == [
        3,
        1,
        30,
        900,
    ]
    latency = by_type["completion_latency"]
    assert latency.unit == "s"
    distribution = latency.points[0].value.distribution_value
    assert distribution.count == 3
    assert distribution.mean == pytest.approx((0.2 + 0.4 + 1.5) / 3)
    assert tuple(distribution.bucket_options.explicit_buckets.bounds) == LATENCY_BUCKET_BOUNDS
    assert tuple(distribution.bucket_counts) == sent.latency.bucket_counts


def test_many_reports_are_written_200_series_at_a_time(metrics, fake_monitoring):
    reports = [report(f"class-{i:02d}", end=END) for i in range(50)]  # 5 series each
    metrics.write_worker_reports(reports)
    assert [len(r.time_series) for r in fake_monitoring.create_requests] == [200, 50]


def test_two_reports_of_one_series_go_in_separate_requests_oldest_first(metrics, fake_monitoring):
    metrics.write_worker_reports([report("render", end=END), report("render", end=END - timedelta(minutes=1))])
    requests = fake_monitoring.create_requests
    assert len(requests) == 2  # the fake, like Monitoring, refuses a series twice in one request
    assert requests[0].time_series[0].points[0].interval.end_time == END - timedelta(minutes=1)


def test_reports_read_back_per_class_summed_over_instances(metrics, fake_monitoring):
    minute = END - timedelta(minutes=1)
    metrics.write_worker_reports(
        [
            report("render", end=minute - timedelta(seconds=20), instance="a", completed=2, samples=(0.1, 0.3)),
            report("render", end=minute, instance="b", completed=5, samples=(2.0,)),
            report("index", end=minute, instance="c", completed=1, samples=(0.05,)),
        ]
    )
    targets = [target("render"), target("index")]
    completed = metrics.series(MetricKind.COMPLETED, targets, start=START, end=END)
    assert [(p.end, p.value) for p in completed["render"]] == [(minute, 7.0)]
    assert [(p.end, p.value) for p in completed["index"]] == [(minute, 1.0)]
    [latency] = metrics.series(MetricKind.COMPLETION_LATENCY, targets, start=START, end=END)["render"]
    expected = histogram(0.1, 0.3, 2.0)
    assert latency.value.count == 3 and latency.value.bucket_counts == expected.bucket_counts
    assert latency.value.sum == pytest.approx(2.4)


def test_permission_denied_on_write_names_the_writer_role(metrics, fake_monitoring):
    fake_monitoring.fail_next("PERMISSION_DENIED", 1)
    with pytest.raises(ProviderError) as caught:
        metrics.write_worker_report(report("render", end=END))
    assert caught.value.permanent
    assert f"roles/monitoring.metricWriter on projects/{PROJECT}" in caught.value.message


def test_unavailable_twice_then_the_write_succeeds(metrics, fake_monitoring):
    fake_monitoring.fail_next("UNAVAILABLE", 2)
    metrics.write_worker_report(report("render", end=END))
    assert len(fake_monitoring.create_requests) == 3
    assert len(fake_monitoring.series) == 5  # written once


# --- histograms ---------------------------------------------------------------------------------------------
def test_a_histogram_with_the_shared_bounds_keeps_its_buckets_even_when_trailing_zeros_are_cut():
    counts = [0, 2, 5, 1]
    proto = distribution_pb2.Distribution(
        count=8,
        mean=0.02,
        bucket_options={"explicit_buckets": {"bounds": list(LATENCY_BUCKET_BOUNDS)}},
        bucket_counts=counts,
    )
    result = to_distribution(proto)
    assert result.bucket_counts == tuple(counts + [0] * (len(LATENCY_BUCKET_BOUNDS) + 1 - len(counts)))
    assert result.count == 8 and result.sum == pytest.approx(0.16)


def test_a_histogram_with_other_bounds_is_re_bucketed():
    proto = distribution_pb2.Distribution(
        count=6,
        mean=1.0,
        bucket_options={"explicit_buckets": {"bounds": [0.1, 1.0, 10.0]}},
        bucket_counts=[1, 2, 2, 1],  # (<0.1) [0.1,1) [1,10) (>=10)
    )
    result = to_distribution(proto)
    assert sum(result.bucket_counts) == 6 and len(result.bucket_counts) == len(LATENCY_BUCKET_BOUNDS) + 1

    def index(value):
        return bisect.bisect_right(LATENCY_BUCKET_BOUNDS, value)

    assert result.bucket_counts[index(0.55)] == 2  # midpoint of [0.1, 1)
    assert result.bucket_counts[index(5.5)] == 2  # midpoint of [1, 10)
    assert result.bucket_counts[index(10.0)] == 1  # overflow starts at 10
    assert result.bucket_counts[index(0.0999)] == 1  # the underflow lands just below 0.1


def test_exponential_buckets_are_understood():
    proto = distribution_pb2.Distribution(
        count=1,
        mean=3.0,
        bucket_options={"exponential_buckets": {"num_finite_buckets": 3, "growth_factor": 2.0, "scale": 1.0}},
        bucket_counts=[0, 0, 1],  # bounds 1, 2, 4, 8: bucket 2 is [2, 4)
    )
    result = to_distribution(proto)
    assert result.bucket_counts[bisect.bisect_right(LATENCY_BUCKET_BOUNDS, 3.0)] == 1
