"""docs/grafana/controlplane-fleet.json queries only what /metrics exports: every expression (panels,
annotations, variables) names at least one metric, each of them is in a scrape of a fleet that has
every kind of series, and promtool parses every expression."""

import json
import re
import shutil
import subprocess
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from tests.api.test_prometheus_export import LATENCIES, NOW
from tests.factories import CostRatesFactory, SloFactory, WorkloadClassFactory
from tests.workloads.telemetry_doubles import FakeMetrics, distribution, installed_metrics
from workloads.models import DeploymentSource, PoolControl, PoolHold
from workloads.providers.base import MetricKind
from workloads.services.deployments import deployment_record
from workloads.services.polling import metrics_poll
from workloads.services.slo_evaluation import slo_alerts_evaluate
from workloads.services.tokens import api_token_issue

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "controlplane-fleet.json"
METRIC = re.compile(r"\b(controlplane_[a-z0-9_]+)\b")
# What Grafana substitutes before sending a query, replaced the way it would be for promtool.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "6h", "$class": ".*", "$team": ".*"}


def _expressions(dashboard: dict) -> list[str]:
    found = []
    panels = list(dashboard["panels"])
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        found.extend(target["expr"] for target in panel.get("targets") or [])
    found.extend(a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


@pytest.fixture
def exported(db, viewer) -> set[str]:
    """Sample names of one scrape of a class with every kind of series."""
    rates = CostRatesFactory(name="grafana", vcpu_second=Decimal("0.0001"), per_record=Decimal("0.001"))
    docs = WorkloadClassFactory(slug="docs", cost_rates=rates)
    for kind, threshold in (("queue_age", 60), ("completion_latency", 5)):
        SloFactory(
            workload_class=docs,
            kind=kind,
            percentile=Decimal("95"),
            threshold_seconds=threshold,
            target_percent=Decimal("99"),
        )
    PoolControl.objects.create(workload_class=docs, last_set_count=2)
    PoolHold.objects.create(
        workload_class=docs,
        reason="freeze",
        expires_at=NOW + timedelta(hours=1),
        bounds_min=0,
        bounds_max=1,
        bounds_source="baseline",
        created_by_label="otto",
        created_at=NOW,
    )
    deployment_record(workload_class=docs, actor=None, source=DeploymentSource.API, now=NOW, version="v1")
    with time_machine.travel(NOW, tick=False), installed_metrics(FakeMetrics()) as metrics:
        for metric in MetricKind:
            metrics.set(metric, lambda slug, end: 3.0)
        metrics.set(MetricKind.COMPLETION_LATENCY, lambda slug, end: distribution(LATENCIES))
        metrics_poll(now=NOW, window_minutes=10)
        slo_alerts_evaluate(now=NOW)
        _token, raw = api_token_issue(actor=None, user=viewer, name="grafana", scopes=["read"])
        text = APIClient().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {raw}").content.decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_every_query_names_only_metrics_that_metrics_exports(exported):
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = _expressions(dashboard)
    assert len(expressions) >= 20
    for expr in expressions:
        names = METRIC.findall(expr)
        assert names, f"no controlplane metric in {expr!r}"
        missing = [name for name in names if name not in exported]
        assert not missing, f"{expr!r} names {missing}, which /metrics does not export"


def test_it_covers_what_the_issue_asks_for():
    text = DASHBOARD.read_text()
    for metric in (
        "controlplane_class_status",  # fleet overview
        "controlplane_queue_oldest_unacked_age_seconds",  # queue age ...
        "controlplane_slo_threshold_seconds",  # ... vs SLO
        "controlplane_completion_latency_seconds_bucket",  # latency percentiles
        "controlplane_slo_burn_rate",  # budget burn
        "controlplane_cost_total",  # cost
        "controlplane_last_deployment_timestamp_seconds",  # deployments as annotations
    ):
        assert metric in text, metric


def test_promtool_parses_every_expression(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    rules = []
    for n, expr in enumerate(_expressions(json.loads(DASHBOARD.read_text()))):
        if expr.startswith("label_values("):
            expr = METRIC.search(expr).group(1)  # a Grafana helper, not PromQL: its metric is checked above
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{n}", "expr": expr})
    path = tmp_path / "rules.yml"  # JSON is YAML: promtool reads it as a rules file
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
