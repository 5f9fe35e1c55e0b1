"""The Prometheus export: counters that only grow across polls, re-polls, downsampling and prunes;
the latency histogram against the rollups; pool target and holds; promtool's verdict; gzip."""

import gzip
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from tests.factories import CostRatesFactory, WorkloadClassFactory
from tests.workloads.telemetry_doubles import FakeMetrics, distribution, installed_metrics, lognormal_latencies
from workloads.domain import histogram
from workloads.models import MetricRollup, PoolControl, PoolHold, Resolution
from workloads.providers.base import MetricKind
from workloads.selectors.exports import EXPORTED_LATENCY_BOUNDS
from workloads.services.polling import metrics_poll
from workloads.services.rollups import rollups_downsample
from workloads.services.tokens import api_token_issue

NOW = datetime(2026, 3, 2, 10, 0, 20, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
# The same latencies every minute, so each minute's histogram is known.
LATENCIES = lognormal_latencies(40, median=2.5)


@pytest.fixture
def scrape(db, viewer):
    _token, raw = api_token_issue(actor=None, user=viewer, name="prometheus", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def get(**headers) -> str:
        response = client.get("/metrics", **headers)
        assert response.status_code == 200, response.content
        return response.content.decode()

    return get


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found, name: str, **labels) -> float:
    return found[(name, frozenset(labels.items()))]


@pytest.fixture
def fleet(db):
    rates = CostRatesFactory(
        name="export-rates",
        vcpu_second=Decimal("0.0001"),
        gib_second=Decimal("0"),
        per_record=Decimal("0.001"),
        per_1k_tokens=Decimal("0.002"),
    )
    docs = WorkloadClassFactory(slug="docs", cost_rates=rates, vcpu_per_instance=Decimal("1"))
    with installed_metrics(FakeMetrics()) as metrics:
        metrics.set(MetricKind.COMPLETED, lambda slug, end: 30.0)
        metrics.set(MetricKind.FAILED, lambda slug, end: 2.0)
        metrics.set(MetricKind.RECORDS, lambda slug, end: 10.0)
        metrics.set(MetricKind.TOKENS, lambda slug, end: 100.0)
        metrics.set(MetricKind.INSTANCE_COUNT, lambda slug, end: 2.0)
        metrics.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: distribution(LATENCIES))
        yield {"docs": docs, "metrics": metrics}


def _poll(moment: datetime, minutes: int = 10) -> None:
    with time_machine.travel(moment, tick=False):
        metrics_poll(now=moment, window_minutes=minutes)


def _minute_sum(column: str) -> float:
    return MetricRollup.objects.filter(resolution=Resolution.MINUTE).aggregate(total=Sum(column))["total"]


def test_it_exports_counters_equal_to_the_rollups_and_cost_in_the_rates_currency(fleet, scrape):
    _poll(NOW)
    found = samples(scrape())
    for name, column in (
        ("controlplane_completed_total", "completed"),
        ("controlplane_failed_total", "failed"),
        ("controlplane_records_total", "records"),
        ("controlplane_tokens_total", "tokens"),
        ("controlplane_instance_seconds_total", "instance_seconds"),
    ):
        assert value(found, name, workload_class="docs") == _minute_sum(column), name
    assert value(found, "controlplane_completed_total", workload_class="docs") == 30 * 10  # 10 minutes
    # 2 instances x 60 s x 1 vCPU x 0.0001 + 10 records x 0.001 + 100 tokens x 0.002 / 1000, per minute
    cost = value(found, "controlplane_cost_total", workload_class="docs", currency="USD")
    assert cost == pytest.approx(10 * (2 * 60 * 0.0001 + 10 * 0.001 + 0.1 * 0.002))
    assert value(found, "controlplane_dead_lettered_total", workload_class="docs") == 0


def test_it_exports_latency_buckets_that_match_the_rollups(fleet, scrape):
    _poll(NOW)
    found = samples(scrape())
    merged = histogram.merge(
        MetricRollup.objects.filter(resolution=Resolution.MINUTE).values_list("latency_buckets", flat=True)
    )
    bounds = list(histogram.BOUNDS)
    for bound in EXPORTED_LATENCY_BOUNDS:
        expected = sum(merged[: bounds.index(bound) + 1])  # rollup buckets wholly below the bound
        exported = value(found, "controlplane_completion_latency_seconds_bucket", workload_class="docs", le=repr(bound))
        assert exported == expected, bound
    total = _minute_sum("latency_count")
    assert total == 40 * 10
    assert value(found, "controlplane_completion_latency_seconds_bucket", workload_class="docs", le="+Inf") == total
    assert value(found, "controlplane_completion_latency_seconds_count", workload_class="docs") == total
    assert value(found, "controlplane_completion_latency_seconds_sum", workload_class="docs") == pytest.approx(
        _minute_sum("latency_sum")
    )
    # The buckets are cumulative and spread over several bounds (a real distribution, not one bucket).
    cumulative = [
        value(found, "controlplane_completion_latency_seconds_bucket", workload_class="docs", le=repr(b))
        for b in EXPORTED_LATENCY_BOUNDS
    ]
    assert cumulative == sorted(cumulative) and len(set(cumulative)) > 3


def test_its_counters_only_grow_across_polls_re_polls_downsampling_and_prunes(fleet, scrape):
    metrics = fleet["metrics"]
    names = [
        "controlplane_completed_total",
        "controlplane_instance_seconds_total",
        "controlplane_completion_latency_seconds_count",
    ]
    seen = []
    moment = NOW
    for _ in range(6):
        _poll(moment)  # each poll re-reads 10 minutes, 9 of which the previous poll already wrote
        found = samples(scrape())
        seen.append([value(found, name, workload_class="docs") for name in names])
        moment += MINUTE
    completed = [row[0] for row in seen]
    assert completed == [30 * (10 + step) for step in range(6)]  # re-polled minutes add nothing
    assert all(
        a <= b for earlier, later in zip(seen, seen[1:], strict=False) for a, b in zip(earlier, later, strict=True)
    )

    # A provider that revises a minute down, and minutes folded into hours and deleted: the
    # rollups shrink, the counters do not.
    metrics.set(MetricKind.COMPLETED, lambda slug, end: 5.0)
    _poll(moment)
    with time_machine.travel(moment + timedelta(days=30), tick=False):
        rollups_downsample(now=moment + timedelta(days=30))
    assert not MetricRollup.objects.filter(resolution=Resolution.MINUTE).exists()
    found = samples(scrape())
    assert value(found, "controlplane_completed_total", workload_class="docs") == completed[-1] + 5
    assert value(found, "controlplane_completion_latency_seconds_count", workload_class="docs") >= seen[-1][2]


def test_it_exports_the_pool_target_and_its_holds(fleet, scrape, operator):
    docs = fleet["docs"]
    other = WorkloadClassFactory(slug="index")
    PoolControl.objects.create(workload_class=docs, last_set_count=3)
    PoolHold.objects.create(
        workload_class=docs,
        reason="hold at 3 while the index rebuilds",
        hold_count=3,
        expires_at=NOW + timedelta(hours=1),
        bounds_min=0,
        bounds_max=10,
        bounds_source="baseline",
        created_by_label="otto",
        created_at=NOW,
    )
    PoolHold.objects.create(
        workload_class=other,
        reason="deploy freeze",
        expires_at=NOW + timedelta(hours=1),
        bounds_min=0,
        bounds_max=1,
        bounds_source="baseline",
        created_by_label="otto",
        created_at=NOW,
    )
    found = samples(scrape())
    assert value(found, "controlplane_worker_instances_target", workload_class="docs") == 3
    assert ("controlplane_worker_instances_target", frozenset({("workload_class", "index")})) not in found
    assert value(found, "controlplane_pool_hold", workload_class="docs", hold="override") == 1
    assert value(found, "controlplane_pool_hold", workload_class="docs", hold="pause") == 0
    assert value(found, "controlplane_pool_hold", workload_class="index", hold="pause") == 1
    assert value(found, "controlplane_pool_hold", workload_class="index", hold="incident") == 0
    # A class never polled still has its counters, at zero, so rate() works from its first scrape.
    assert value(found, "controlplane_completed_total", workload_class="index") == 0
    assert value(found, "controlplane_class_info", workload_class="index", owner_team=other.owner_team, tier="standard")


def test_promtool_finds_nothing_to_complain_about(fleet, scrape):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    _poll(NOW)
    WorkloadClassFactory(slug="empty")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=scrape(), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


def test_it_is_gzipped_for_a_scraper_that_accepts_it(fleet, scrape, viewer):
    _poll(NOW)
    with time_machine.travel(NOW, tick=False):
        plain = scrape()
        _token, raw = api_token_issue(actor=None, user=viewer, name="gz", scopes=["read"])
        response = APIClient().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.content).decode() == plain


def test_it_exports_slo_thresholds_targets_and_the_last_deployment(fleet, scrape):
    from tests.factories import SloFactory
    from workloads.models import DeploymentSource
    from workloads.services.deployments import deployment_record

    docs = fleet["docs"]
    SloFactory(
        workload_class=docs,
        kind="queue_age",
        percentile=Decimal("95"),
        threshold_seconds=90,
        target_percent=Decimal("99.5"),
    )
    found = samples(scrape())
    assert ("controlplane_last_deployment_timestamp_seconds", frozenset({("workload_class", "docs")})) not in found
    deployment_record(workload_class=docs, actor=None, source=DeploymentSource.API, now=NOW, version="v1")
    deployed = deployment_record(
        workload_class=docs, actor=None, source=DeploymentSource.API, now=NOW + MINUTE, version="v2"
    )
    found = samples(scrape())
    assert value(found, "controlplane_slo_threshold_seconds", workload_class="docs", slo="queue_age") == 90
    assert value(found, "controlplane_slo_target_ratio", workload_class="docs", slo="queue_age") == 0.995
    assert value(found, "controlplane_last_deployment_timestamp_seconds", workload_class="docs") == (
        deployed.deployed_at.timestamp()
    )
