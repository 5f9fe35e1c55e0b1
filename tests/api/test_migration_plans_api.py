"""A migration plan through the API: create, advance on evidence (each step an action with progress
and an audit event), a gate that refuses, an override that is recorded, roll-back, CSV, and
"where to start"."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.roles import Role
from tests.workloads.migration_helpers import feed, migration_pair
from tests.workloads.pools import run_pending
from workloads.models import ActionKind, AuditEvent, MigrationPlan, WorkloadClass


@pytest.fixture
def admin_api(client_as, make_user):
    return client_as(make_user("mig-admin", Role.ADMIN))


@pytest.fixture
def operator_api(client_as, operator):
    return client_as(operator)


def _create(admin_api, **body):
    response = admin_api.post(
        "/api/v1/migration-plans/", {"source": "docs-legacy", "target": "docs-pool", **body}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _advance(api, plan_id, to_phase, **extra):
    return api.post(f"/api/v1/migration-plans/{plan_id}/advance/", {"to_phase": to_phase, **extra}, format="json")


def _route(slug="docs-legacy") -> int:
    return WorkloadClass.objects.get(slug=slug).route_percent


def _rewind(plan_id, minutes=60):
    """Start the phase under way an hour ago, so the fed minutes fall inside it."""
    started = timezone.now() - timedelta(minutes=minutes)
    MigrationPlan.objects.filter(pk=plan_id).update(phase_started_at=started)
    return started


def test_a_plan_moves_from_baseline_to_cut_over_on_evidence_and_rolls_back(db, admin_api, operator_api):
    migration_pair()
    plan = _create(admin_api, canary_percent=20, ramp_percent=50)
    assert plan["phase"] == "baseline" and plan["route_percent"] == 0

    # Baseline -> canary: not gated (nothing is routed yet); an action routes 20 %.
    response = _advance(operator_api, plan["id"], "canary", reason="start the canary")
    assert response.status_code == 202, response.content
    assert response.json()["decision"]["verdict"] == "not gated"
    assert _route() == 0  # not before the action runs
    (action,) = run_pending(kind=ActionKind.MIGRATION_STEP)
    assert action.state == "succeeded" and action.progress_done == 2
    assert _route() == 20
    assert admin_api.get(f"/api/v1/migration-plans/{plan['id']}/").json()["phase"] == "canary"

    # The canary's evidence: the pool fails less, is faster and cheaper -> the gate passes.
    start = _rewind(plan["id"])
    old, new = WorkloadClass.objects.get(slug="docs-legacy"), WorkloadClass.objects.get(slug="docs-pool")
    feed(old, start=start, minutes=50, completed=40, failed=2, latency=3.0, instance_seconds=120)
    feed(new, start=start, minutes=50, completed=10, failed=0, latency=1.0, instance_seconds=20)
    detail = admin_api.get(f"/api/v1/migration-plans/{plan['id']}/").json()
    ev = detail["evidence"]
    assert ev["old"]["completed"] == 2000 and ev["new"]["completed"] == 500
    assert ev["old"]["failure_rate"]["n"] == 2100
    assert ev["old"]["failure_rate"]["low"] < ev["old"]["failure_rate"]["estimate"] < ev["old"]["failure_rate"]["high"]
    assert {c["name"]: c["verdict"] for c in ev["checks"]} == {
        "failure_rate": "pass",
        "lead_time_p95": "pass",
        "queue_age_attainment": "pass",
        "cost_per_1k": "pass",
    }
    assert ev["verdict"] == "pass"

    response = _advance(operator_api, plan["id"], "ramp")
    assert response.status_code == 202, response.content
    assert response.json()["decision"]["verdict"] == "pass"
    run_pending(kind=ActionKind.MIGRATION_STEP)
    assert _route() == 50

    # The ramp with nothing measured yet: the gate cannot pass, so cut-over needs an override.
    _rewind(plan["id"], minutes=1)
    refused = _advance(operator_api, plan["id"], "cut_over")
    assert refused.status_code == 409
    assert refused.json()["type"] == "gate_not_passed" and refused.json()["verdict"] == "insufficient"
    forced = _advance(operator_api, plan["id"], "cut_over", override=True, reason="the pool is fine, traffic is low")
    assert forced.status_code == 202
    assert forced.json()["decision"]["overridden"] is True
    run_pending(kind=ActionKind.MIGRATION_STEP)
    assert _route() == 100

    # Roll-back in one call, never gated: everything goes back to the old runtime.
    response = operator_api.post(
        f"/api/v1/migration-plans/{plan['id']}/rollback/", {"reason": "p95 regressed"}, format="json"
    )
    assert response.status_code == 202
    run_pending(kind=ActionKind.MIGRATION_STEP)
    assert _route() == 0
    detail = admin_api.get(f"/api/v1/migration-plans/{plan['id']}/").json()
    assert detail["phase"] == "rolled_back"
    assert [d["to_phase"] for d in detail["decisions"]] == ["rolled_back", "cut_over", "ramp", "canary"]
    assert detail["decisions"][1]["acted_by_label"] == "otto-operator"
    audited = list(AuditEvent.objects.filter(action__startswith="migration_plan.").values_list("action", flat=True))
    assert sorted(audited) == sorted(
        [
            "migration_plan.create",
            "migration_plan.advance",
            "migration_plan.advance",
            "migration_plan.advance",
            "migration_plan.rollback",
        ]  # fmt: skip
    )
    assert _advance(operator_api, plan["id"], "canary").status_code == 409  # an ended plan stays ended


def test_a_worse_pool_fails_the_gate_with_the_data_behind_it(db, admin_api, operator_api):
    migration_pair()
    plan = _create(admin_api)
    _advance(operator_api, plan["id"], "canary")
    run_pending(kind=ActionKind.MIGRATION_STEP)
    start = _rewind(plan["id"])
    old, new = WorkloadClass.objects.get(slug="docs-legacy"), WorkloadClass.objects.get(slug="docs-pool")
    feed(old, start=start, minutes=50, completed=40, failed=1, latency=2.0, instance_seconds=60)
    feed(new, start=start, minutes=50, completed=10, failed=2, latency=6.0, instance_seconds=60)
    refused = _advance(operator_api, plan["id"], "ramp")
    assert refused.status_code == 409
    checks = {c["name"]: c for c in refused.json()["checks"]}
    assert checks["failure_rate"]["verdict"] == "fail"
    assert checks["lead_time_p95"]["verdict"] == "fail"
    assert checks["cost_per_1k"]["verdict"] == "fail"
    assert _route() == 20  # unchanged


def test_the_evidence_comes_as_csv(db, admin_api, operator_api):
    migration_pair()
    plan = _create(admin_api)
    _advance(operator_api, plan["id"], "canary")
    run_pending(kind=ActionKind.MIGRATION_STEP)
    start = _rewind(plan["id"])
    feed(WorkloadClass.objects.get(slug="docs-legacy"), start=start, minutes=5, completed=10, failed=1, latency=2.0,
         instance_seconds=60)  # fmt: skip
    response = admin_api.get(f"/api/v1/migration-plans/{plan['id']}/evidence/?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:5] == ["phase", "start", "end", "side", "class"]
    assert [r[3] for r in rows[1:]] == ["old", "new"]
    assert rows[1][6:8] == ["50", "5"]


def test_plans_are_validated(db, admin_api, operator_api, viewer, client_as):
    migration_pair()
    bad = admin_api.post("/api/v1/migration-plans/", {"source": "docs-pool", "target": "docs-legacy"}, format="json")
    assert bad.status_code == 400 and bad.json()["type"] == "target_not_worker_pool"
    same = admin_api.post("/api/v1/migration-plans/", {"source": "docs-pool", "target": "docs-pool"}, format="json")
    assert same.status_code == 400
    plan = _create(admin_api)
    again = admin_api.post("/api/v1/migration-plans/", {"source": "docs-legacy", "target": "docs-pool"}, format="json")
    assert again.status_code == 409 and "already has a migration plan under way" in again.json()["detail"]
    assert _advance(operator_api, plan["id"], "cut_over").status_code == 409  # baseline -> canary first
    assert _advance(operator_api, plan["id"], "sideways").status_code == 400
    assert _advance(client_as(viewer), plan["id"], "canary").status_code == 403
    assert (
        operator_api.post("/api/v1/migration-plans/", {"source": "docs-legacy", "target": "docs-pool"}).status_code
        == 403
    )
    assert admin_api.get("/api/v1/migration-plans/999/").status_code == 404


def test_where_to_start_names_the_noisiest_observed_workload(db, admin_api):
    old, new = migration_pair()
    quiet = type(old).objects.create  # noqa: F841  (readability: the pair plus the demo classes)
    start = timezone.now() - timedelta(hours=2)
    feed(old, start=start, minutes=30, completed=20, failed=5, latency=3.0, instance_seconds=60)
    feed(new, start=start, minutes=30, completed=20, failed=0, latency=1.0, instance_seconds=30)
    body = admin_api.get("/api/v1/migration-candidates/").json()
    assert body["best"]["workload_class"] == "docs-legacy"
    assert any("failure rate" in reason for reason in body["best"]["reasons"])
    assert [c["workload_class"] for c in body["ranking"]][0] == "docs-legacy"
