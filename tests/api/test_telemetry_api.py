"""Telemetry API and /metrics: shapes, parameters, and who may read them."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from controlplane.roles import Role
from tests.factories import CostRatesFactory, SloFactory, WorkloadClassFactory
from tests.shared_rows import shared_rows
from tests.workloads.telemetry_doubles import FakeMetrics, dead_lettered_work, installed_metrics
from workloads.providers.base import MetricKind, ProviderError
from workloads.services.polling import metrics_poll
from workloads.services.slo_evaluation import slo_alerts_evaluate
from workloads.services.tokens import api_token_issue

NOW = datetime(2026, 3, 2, 10, 0, 20, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(scope="module")
def shared_world(django_db_setup, django_db_blocker):
    """Two classes with two hours of data; one is failing hard enough to page. Built once for the
    module (tests/shared_rows.py): the tests only read it, each in its own savepoint."""
    with (
        shared_rows(django_db_blocker),
        time_machine.travel(NOW, tick=False),
        installed_metrics(FakeMetrics()) as metrics,
    ):
        rates = CostRatesFactory(
            name="api-rates", vcpu_second=Decimal("0.0001"), gib_second=Decimal("0"), per_record=Decimal("0.001")
        )
        good = WorkloadClassFactory(slug="steady", owner_team="docs", cost_rates=rates)
        bad = WorkloadClassFactory(slug="failing", owner_team="search", cost_rates=rates)
        SloFactory(workload_class=good, kind="success_ratio", target_percent=Decimal("99"))
        SloFactory(workload_class=bad, kind="success_ratio", target_percent=Decimal("99"))
        SloFactory(
            workload_class=good,
            kind="queue_age",
            percentile=Decimal("95"),
            threshold_seconds=60,
            target_percent=Decimal("99"),
        )
        metrics.set(MetricKind.UNDELIVERED_MESSAGES, lambda slug, end: float((end - MINUTE).minute))
        metrics.set(MetricKind.OLDEST_UNACKED_AGE, lambda slug, end: 12.0)
        metrics.set(MetricKind.INSTANCE_COUNT, lambda slug, end: 1.0)
        metrics.set(MetricKind.COMPLETED, lambda slug, end: 50.0 if slug == "steady" else 10.0)
        metrics.set(MetricKind.FAILED, lambda slug, end: 0.0 if slug == "steady" else 40.0)
        # No retries: every failed attempt of "failing" is a unit of work dead-lettered.
        dead_lettered_work(bad, lambda slug, end: 40.0, start=NOW.replace(second=0) - 120 * MINUTE, end=NOW)
        metrics.set(MetricKind.RECORDS, lambda slug, end: 5.0)
        metrics.fail(MetricKind.TOKENS, ProviderError("quota exceeded", permanent=False, code="RESOURCE_EXHAUSTED"))
        metrics_poll(now=NOW, window_minutes=120)
        slo_alerts_evaluate(now=NOW)
        yield {"good": good, "bad": bad, "metrics": metrics}


@pytest.fixture
def world(shared_world, db, frozen):
    """The module's world, with its metrics installed and the clock at NOW for the test."""
    with installed_metrics(shared_world["metrics"]):
        yield shared_world


ENDPOINTS = [
    "/api/v1/classes/steady/metrics/?metric=backlog",
    "/api/v1/classes/steady/error-budget/",
    "/api/v1/slos/",
    "/api/v1/alerts/",
    "/api/v1/poll-runs/",
    "/api/v1/cost/",
]


@pytest.fixture
def callers(world, make_user):
    clients = {"anonymous": APIClient()}
    for name, role in [("outsider", None), ("viewer", Role.VIEWER)]:
        client = APIClient()
        client.force_login(make_user(f"{name}-t", role))
        clients[name] = client
    reader = make_user("reader-bot", Role.VIEWER)
    for name, scopes in [("read_token", ["read"]), ("ingest_token", ["ingest:*"])]:
        _token, raw = api_token_issue(actor=None, user=reader, name=name, scopes=scopes)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        clients[name] = client
    return clients


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize(
    ("caller", "expected"),
    [("anonymous", 401), ("outsider", 403), ("viewer", 200), ("read_token", 200), ("ingest_token", 403)],
)
def test_permission_matrix(callers, url, caller, expected):
    assert callers[caller].get(url).status_code == expected


@pytest.fixture
def viewer_client(world, viewer, client_as):
    return client_as(viewer)


def test_metric_series_from_rollups(viewer_client):
    body = viewer_client.get(
        "/api/v1/classes/steady/metrics/",
        {"metric": "backlog", "start": (NOW - timedelta(minutes=10)).isoformat(), "end": NOW.isoformat()},
    ).json()
    assert body["metric"] == "backlog" and body["unit"] == "messages"
    assert body["step_seconds"] == 60 and body["resolution"] == "minute"
    assert [p["v"] for p in body["points"]] == [50, 51, 52, 53, 54, 55, 56, 57, 58, 59]
    assert body["points"][0]["t"] == "2026-03-02T09:50:00Z"
    assert body["newest_sample_at"] == "2026-03-02T10:00:00Z" and body["fetched_at"] == "2026-03-02T10:00:20Z"


def test_the_step_grows_to_bound_the_points(viewer_client):
    body = viewer_client.get(
        "/api/v1/classes/steady/metrics/",
        {"metric": "completed", "start": (NOW - timedelta(days=30)).isoformat(), "step": 60},
    ).json()
    assert body["resolution"] == "hour" and body["step_seconds"] == 3600  # 30 days / 1440 points > 30 min
    assert [p["v"] for p in body["points"]] == [50 * 60, 50 * 60]  # 08:00-08:59 and 09:00-09:59
    cost = viewer_client.get("/api/v1/classes/steady/metrics/", {"metric": "cost", "step": 300}).json()
    assert cost["unit"] == "USD" and cost["step_seconds"] == 300
    assert cost["points"][-1]["v"] == pytest.approx(5 * 60 * 0.0001 + 5 * 5 * 0.001, rel=1e-6)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"metric": "nope"}, "metric"),
        ({"metric": "backlog", "start": NOW.isoformat(), "end": NOW.isoformat()}, "start"),
        ({"metric": "backlog", "step": 5}, "step"),
    ],
)
def test_metric_parameters_are_validated(viewer_client, params, field):
    response = viewer_client.get("/api/v1/classes/steady/metrics/", params)
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error" and field in response.json()["errors"]


def test_an_unknown_class_is_404(viewer_client):
    assert viewer_client.get("/api/v1/classes/nope/metrics/", {"metric": "backlog"}).status_code == 404


def test_slos_with_attainment_budget_and_burn_rates(viewer_client):
    body = viewer_client.get("/api/v1/slos/", {"workload_class": "failing"}).json()
    (slo,) = body["results"]
    assert slo["workload_class"] == "failing" and slo["kind"] == "success_ratio"
    assert slo["attainment_percent"] == pytest.approx(20)
    assert slo["met"] is False
    budget = slo["budget"]
    # 2 hours x 50 jobs, 80 % failed: 6000 jobs, 4800 bad; a 1 % budget allows 60.
    assert budget["unit"] == "events"
    assert (budget["total"], budget["consumed"]) == (pytest.approx(60), 4800)
    assert budget["remaining_percent"] == pytest.approx(-7900)
    assert slo["windows"]["5m"]["burn_rate"] == pytest.approx(80)
    assert slo["active_alerts"] == 3
    queue = viewer_client.get("/api/v1/slos/", {"workload_class": "steady", "kind": "queue_age"}).json()["results"][0]
    assert queue["budget"]["unit"] == "minutes" and queue["total"] == 120


def test_the_success_ratio_states_what_it_counts_and_shows_the_attempts_apart(viewer_client):
    slo = viewer_client.get("/api/v1/slos/", {"workload_class": "failing", "kind": "success_ratio"}).json()
    assert slo["results"][0]["attempt_failure_percent"] == pytest.approx(80)  # 40 of 50 attempts a minute
    schema = viewer_client.get("/api/schema/?format=json").json()["components"]["schemas"]["SloStatus"]
    assert "by its final outcome" in schema["properties"]["good"]["description"]
    assert "Failed attempts" in schema["properties"]["attempt_failure_percent"]["description"]


def test_alerts_active_and_filtered(viewer_client):
    active = viewer_client.get("/api/v1/alerts/", {"state": "active"}).json()
    assert {(a["workload_class"], a["rule"]) for a in active["results"]} == {
        ("failing", "page-1h-5m"),
        ("failing", "page-6h-30m"),
        ("failing", "ticket-3d-6h"),
    }
    assert all(a["active"] and a["resolved_at"] is None for a in active["results"])
    assert viewer_client.get("/api/v1/alerts/", {"state": "resolved"}).json()["count"] == 0
    assert viewer_client.get("/api/v1/alerts/", {"severity": "ticket"}).json()["count"] == 1


def test_poll_failures_are_visible(viewer_client):
    body = viewer_client.get("/api/v1/poll-runs/", {"ok": "false"}).json()
    (run,) = body["results"]
    assert run["metric"] == "tokens" and run["error"] == "transient RESOURCE_EXHAUSTED: quota exceeded"


def test_worker_error_budget_says_what_consumed_it(viewer_client):
    body = viewer_client.get("/api/v1/classes/failing/error-budget/").json()
    assert body["slo"]["kind"] == "success_ratio"
    assert body["consumed_by"] == [
        {"source": "dead_letter_signature", "label": "Failed (sig-failed)", "events": 4800.0},
    ]


def test_the_error_budget_and_the_slo_list_count_the_same_active_alerts(viewer_client):
    budget = viewer_client.get("/api/v1/classes/failing/error-budget/").json()["slo"]
    [listed] = viewer_client.get("/api/v1/slos/", {"workload_class": "failing", "kind": "success_ratio"}).json()[
        "results"
    ]
    alerts = viewer_client.get("/api/v1/alerts/", {"state": "active", "workload_class": "failing"}).json()
    assert budget["id"] == listed["id"]
    assert budget["active_alerts"] == listed["active_alerts"] == alerts["count"] == 3


def test_cost_report_json_and_csv(viewer_client):
    params = {"start": "2026-03-02T09:00:00Z", "end": "2026-03-02T10:00:00Z"}
    body = viewer_client.get("/api/v1/cost/", params).json()
    lines = {line["key"]: line for line in body["lines"]}
    # An hour at 1 instance x 1 vCPU x 0.0001 = 0.36, plus 300 records x 0.001 = 0.30.
    assert lines["steady"]["total_cost"] == "0.660000"
    assert lines["steady"]["cost_per_1k_records"] == "2.200000"
    assert lines["steady"]["cost_per_completed_job"] == "0.000220"
    assert body["totals"] == [{"currency": "USD", "total_cost": "1.320000"}]

    response = viewer_client.get("/api/v1/cost/", {**params, "group_by": "team", "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="cost-team-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["key"], r["total_cost"]) for r in rows] == [("docs", "0.660000"), ("search", "0.660000")]


def test_cost_defaults_to_today_and_refuses_a_bad_group(viewer_client):
    body = viewer_client.get("/api/v1/cost/").json()
    assert body["start"] == "2026-03-02T00:00:00Z" and body["group_by"] == "class"
    assert viewer_client.get("/api/v1/cost/", {"group_by": "tier"}).status_code == 400


# --- /metrics ------------------------------------------------------------------------------------------
def test_prometheus_metrics_need_a_token(world):
    response = APIClient().get("/metrics")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer cpt_abc_wrong")
    assert client.get("/metrics").status_code == 401


def test_prometheus_metrics_refuse_ingest_tokens_and_users_without_a_role(world, make_user):
    for user, scopes in [(make_user("producer", Role.VIEWER), ["ingest:*"]), (make_user("nobody", None), ["*"])]:
        _token, raw = api_token_issue(actor=None, user=user, name="t", scopes=scopes)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert client.get("/metrics").status_code == 403


def test_prometheus_metrics_for_a_viewer_token(world, viewer):
    _token, raw = api_token_issue(actor=None, user=viewer, name="prometheus", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert 'controlplane_queue_oldest_unacked_age_seconds{workload_class="steady"} 12.0' in text
    assert 'controlplane_queue_backlog_messages{workload_class="failing"} 59.0' in text
    assert 'controlplane_slo_error_budget_remaining_ratio{slo="success_ratio",workload_class="steady"} 1.0' in text
    assert 'controlplane_slo_alerts_active{severity="page",workload_class="failing"} 2.0' in text
    assert 'controlplane_slo_alerts_active{severity="page",workload_class="steady"} 0.0' in text
    assert 'controlplane_metrics_age_seconds{workload_class="steady"} 20.0' in text
    assert 'controlplane_class_status{status="breached",workload_class="failing"} 1.0' in text
    assert 'controlplane_metric_poll_ok{metric="tokens"} 0.0' in text
    assert 'controlplane_metric_poll_ok{metric="completed"} 1.0' in text
    assert client.post("/metrics").status_code == 405
