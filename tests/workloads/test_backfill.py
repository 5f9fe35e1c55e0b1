"""Backfill (issue 20, item 3): an observed runtime's past is read from Cloud Monitoring into the
rollups, through the real client library against the in-process Monitoring fake pre-seeded with
weeks of history: an action with one step per day (progress), limited to Monitoring's retention,
idempotent (a second backfill replaces, never adds), audited, started by the API (operators) and
by registering a class on a runtime that publishes its own metrics."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Sum
from django.urls import reverse

from tests.factories import WorkloadClassFactory, class_payload
from workloads.models import Action, ActionKind, AuditEvent, MetricRollup
from workloads.providers import set_providers
from workloads.providers.base import Providers
from workloads.providers.gcp.errors import Backoff
from workloads.providers.gcp.monitoring import CloudMonitoringMetrics
from workloads.selectors.comparison import Period, period_figures
from workloads.selectors.migration import side_evidence
from workloads.services.actions import action_run
from workloads.services.backfill import backfill_request

PROJECT = "backfill-proj"
REVISION = {"project_id": PROJECT, "location": "europe-west1", "configuration_name": "c", "revision_name": "r1"}
DAY = 86400


@pytest.fixture
def monitoring(db, gcp_fakes, settings):
    settings.GOOGLE_CLOUD_PROJECT = PROJECT
    gcp_fakes.reset()
    metrics = CloudMonitoringMetrics(
        gcp_fakes.monitoring_client, project=PROJECT, backoff=Backoff(initial=0.05, maximum=0.2, deadline=5)
    )
    set_providers(Providers(queue=None, pools=None, metrics=metrics, name="gcp"))
    yield gcp_fakes.monitoring
    set_providers(None)


def seed_history(fake, *, days_ago: list[float]):
    """At each moment: 10 requests, 1 of them a 5xx, and 30 billable instance-seconds."""
    now = time.time()
    for code, count in (("2xx", 9), ("5xx", 1)):
        fake.seed(
            "run.googleapis.com/request_count",
            resource_type="cloud_run_revision",
            resource_labels={**REVISION, "service_name": "legacy-svc"},
            metric_labels={"response_code_class": code},
            points=[(now - d * DAY, count) for d in sorted(days_ago, reverse=True)],
        )
    fake.seed(
        "run.googleapis.com/container/billable_instance_time",
        resource_type="cloud_run_revision",
        resource_labels={**REVISION, "service_name": "legacy-svc"},
        points=[(now - d * DAY, 30.0) for d in sorted(days_ago, reverse=True)],
    )


def totals(workload_class, resolution="minute"):
    return MetricRollup.objects.filter(workload_class=workload_class, resolution=resolution).aggregate(
        executions=Sum("executions"), errors=Sum("execution_errors"), seconds=Sum("instance_seconds")
    )


def test_a_backfill_reads_the_past_weeks_once_whatever_runs_it_twice(monitoring, operator, client_as):
    legacy = WorkloadClassFactory(slug="legacy", runtime="cloud_run_service", runtime_resource="legacy-svc")
    # Three days, ten days and 50 days back: the last is past Monitoring's retention.
    seed_history(monitoring, days_ago=[3.2, 10.5, 50.0])
    client = client_as(operator)
    start = datetime.now(UTC) - timedelta(days=60)
    response = client.post(reverse("api:class-backfill", args=["legacy"]), {"start": start.isoformat()}, format="json")
    assert response.status_code == 202, response.content
    action = Action.objects.get(pk=response.json()["id"])
    assert action.kind == ActionKind.BACKFILL and any("42 days" in n for n in action.parameters["notes"])
    assert AuditEvent.objects.filter(action="action.backfill.request", workload_class_slug="legacy").exists()

    action = action_run(action_id=action.pk, sleep=lambda s: None)
    assert action.state == "succeeded", action.error
    assert action.progress_total == action.progress_done == 42  # one step per day of the window
    assert totals(legacy) == {"executions": 20, "errors": 2, "seconds": 60.0}  # not the 50-day-old point
    hours = totals(legacy, "hour")
    assert (hours["executions"], hours["errors"]) == (20, 2)  # folded, so the period readers see it

    # A second backfill of the same weeks replaces what the first wrote: nothing counts twice.
    again = backfill_request(workload_class=legacy, actor=operator)
    action_run(action_id=again.pk, sleep=lambda s: None)
    assert totals(legacy) == {"executions": 20, "errors": 2, "seconds": 60.0}

    # The evidence reads it at once: ten days ago is no longer an empty period.
    moment = datetime.now(UTC) - timedelta(days=10.5)
    figures = period_figures(
        Period(legacy, moment - timedelta(hours=1), moment + timedelta(hours=1)), now=datetime.now(UTC)
    )
    assert figures.instance_seconds == 30 and figures.instance_time_source.startswith("the runtime's own")
    # And a plan's evidence: without worker-kit reports, the runtime's executions are its outcomes.
    side = side_evidence(legacy, start=moment - timedelta(days=1), end=datetime.now(UTC), now=datetime.now(UTC))
    assert (side.completed, side.failed) == (18, 2) and side.failure_rate.n == 20
    assert side.outcomes_source.startswith("the runtime's own")


def test_a_backfill_under_way_is_answered_instead_of_a_second(monitoring, operator):
    legacy = WorkloadClassFactory(slug="legacy", runtime="cloud_run_service", runtime_resource="legacy-svc")
    first = backfill_request(workload_class=legacy, actor=operator)
    assert backfill_request(workload_class=legacy, actor=operator).pk == first.pk


def test_bad_windows_get_a_clear_400(monitoring, operator, client_as):
    WorkloadClassFactory(slug="legacy", runtime="cloud_run_service", runtime_resource="legacy-svc")
    client = client_as(operator)
    url = reverse("api:class-backfill", args=["legacy"])
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = client.post(url, {"start": future}, format="json")
    assert response.status_code == 400 and response.json()["type"] == "empty_backfill_window"
    now = datetime.now(UTC)
    response = client.post(url, {"start": now.isoformat(), "end": (now - timedelta(days=1)).isoformat()}, format="json")
    assert response.status_code == 400
    assert client.post(url, {"start": "last tuesday"}, format="json").status_code == 400
    assert client.post(reverse("api:class-backfill", args=["nope"]), {}, format="json").status_code == 404


def test_registering_a_runtime_with_its_own_metrics_starts_a_backfill(db, admin_user, client_as):
    client = client_as(admin_user)
    for slug, runtime, resource in (("fn-docs", "cloud_functions", "thumbnails"), ("cel-docs", "celery", "t.docs")):
        payload = class_payload(slug=slug, runtime=runtime, runtime_resource=resource)
        assert client.post(reverse("api:workload-class-list"), payload, format="json").status_code == 201
    backfills = Action.objects.filter(kind=ActionKind.BACKFILL)
    # Monitoring knows nothing of a Celery runtime: only the function's past is read.
    assert [a.workload_class.slug for a in backfills] == ["fn-docs"]
    assert backfills[0].reason == "class registered"


def test_the_plan_and_comparison_screens_offer_a_backfill_where_history_is_missing(db, operator, client_as):
    from tests.workloads.migration_helpers import migration_pair
    from workloads.services.migration import migration_plan_create

    old, new = migration_pair()
    plan = migration_plan_create(actor=operator, name="Move docs", source=old, target=new)
    # No history for the week before the plan: creating it already asked for the old side's past.
    started = Action.objects.get(kind=ActionKind.BACKFILL, workload_class=old)
    assert started.reason == "Move docs: the old side's history"

    client = client_as(operator)
    page = client.get(reverse("dashboards:migration-detail", args=[plan.pk])).content.decode()
    assert 'id="backfill-button"' in page and f'data-state="{started.state}"' in page
    assert "little or no telemetry" in page

    response = client.post(
        reverse("dashboards:class-backfill", args=[old.slug]),
        {"next": reverse("dashboards:migration-detail", args=[plan.pk])},
        format="multipart",  # a form post, as the screen's button sends it
    )
    # One under way already: the same action is answered, not a second one.
    assert response.status_code == 302 and response["Location"].endswith(f"/{started.pk}/")
    assert Action.objects.filter(kind=ActionKind.BACKFILL).count() == 1
    bad = client.post(
        reverse("dashboards:class-backfill", args=[old.slug]),
        {"start": "soon", "next": "https://evil/"},
        format="multipart",
    )
    assert bad.status_code == 302 and bad["Location"] == reverse("dashboards:class-detail", args=[old.slug])

    today = datetime.now(UTC).date()
    params = {
        "a_class": old.slug,
        "b_class": new.slug,
        "a_start": (today - timedelta(days=13)).isoformat(),
        "a_end": (today - timedelta(days=7)).isoformat(),
        "b_start": (today - timedelta(days=6)).isoformat(),
        "b_end": today.isoformat(),
    }
    compare = client.get(reverse("dashboards:compare"), params).content.decode()
    assert f'data-class="{old.slug}"' in compare  # the observed side's empty period
    assert f'data-class="{new.slug}"' not in compare  # a pool's history is the poll's, not Monitoring's
