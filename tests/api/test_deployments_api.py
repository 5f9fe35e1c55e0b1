"""POST/GET /api/v1/classes/<slug>/deployments/: deploy-scoped tokens for CI, operator sessions,
validation, the audit event, and who may not."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.roles import Role
from tests.factories import WorkloadClassFactory
from workloads.models import AuditEvent, Deployment, DeploymentSource
from workloads.services.tokens import api_token_issue

URL = "/api/v1/classes/docs/deployments/"
BODY = {
    "version": "v2.4.1",
    "commit": "9FCEB02D0AE598E95DC970B74767F19372D61AF8",
    "deployed_by": "ci-bot",
    "link": "https://ci.example.com/runs/123",
}


@pytest.fixture
def classes(db):
    return WorkloadClassFactory(slug="docs"), WorkloadClassFactory(slug="index")


def _token_client(user, scopes) -> APIClient:
    _token, raw = api_token_issue(actor=None, user=user, name="ci", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_it_records_a_deployment_from_ci_with_a_deploy_scoped_token(classes, make_user):
    client = _token_client(make_user("ci", Role.VIEWER), ["deploy:docs"])
    response = client.post(URL, BODY, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["version"] == "v2.4.1" and body["commit"] == BODY["commit"].lower()
    assert body["source"] == "api" and body["deployed_by"] == "ci-bot" and body["label"] == "v2.4.1"
    deployment = Deployment.objects.get()
    assert deployment.workload_class.slug == "docs" and deployment.source == DeploymentSource.API
    event = AuditEvent.objects.get(action="deployment.record")
    assert event.workload_class_slug == "docs" and event.actor_label == "ci (token ci)" and event.via == "api"
    assert event.extra["version"] == "v2.4.1" and event.extra["link"] == BODY["link"]
    # The same token cannot record for another class, read the registry, or scrape metrics.
    assert client.post("/api/v1/classes/index/deployments/", BODY, format="json").status_code == 403
    assert client.get(URL).status_code == 403
    assert client.get("/metrics").status_code == 403


def test_a_deploy_star_token_records_for_any_class_and_a_read_token_lists(classes, make_user):
    ci = _token_client(make_user("ci", Role.VIEWER), ["deploy:*"])
    assert ci.post("/api/v1/classes/index/deployments/", {"commit": "abcdef1"}, format="json").status_code == 201
    reader = _token_client(make_user("reader", Role.VIEWER), ["read"])
    assert reader.post("/api/v1/classes/index/deployments/", {"commit": "abcdef1"}, format="json").status_code == 403
    listed = reader.get("/api/v1/classes/index/deployments/").json()
    assert [d["label"] for d in listed] == ["abcdef1"] and listed[0]["deployed_by"] == "ci"


def test_people_need_the_operator_role(classes, make_user):
    viewer, operator = APIClient(), APIClient()
    viewer.force_login(make_user("vic", Role.VIEWER))
    operator.force_login(make_user("ops", Role.OPERATOR))
    assert viewer.post(URL, BODY, format="json").status_code == 403
    assert viewer.get(URL).status_code == 200
    response = operator.post(URL, {"version": "v3"}, format="json")
    assert response.status_code == 201 and response.json()["deployed_by"] == "ops"
    assert APIClient().post(URL, BODY, format="json").status_code in (401, 403)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "version"),
        ({"version": "v1", "commit": "not-hex"}, "commit"),
        ({"version": "v1", "commit": "abc"}, "commit"),
        ({"version": "v1", "link": "javascript:alert(1)"}, "link"),
        ({"version": "v1", "link": "ftp://example.com/x"}, "link"),
        ({"version": "x" * 101}, "version"),
        ({"version": "v1", "deployed_at": "yesterday"}, "deployed_at"),
        ({"version": "v1", "deployed_at": (timezone.now() + timedelta(days=2)).isoformat()}, "deployed_at"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(classes, make_user, body, field):
    client = _token_client(make_user("ci", Role.VIEWER), ["deploy:*"])
    response = client.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not Deployment.objects.exists()


def test_an_unknown_class_is_a_404_and_a_bad_limit_a_400(classes, make_user):
    client = _token_client(make_user("ci", Role.VIEWER), ["*"])
    assert client.post("/api/v1/classes/nope/deployments/", BODY, format="json").status_code == 404
    assert client.get(URL, {"limit": "0"}).status_code == 400
    assert client.get(URL, {"limit": "abc"}).status_code == 400
    assert client.get(URL, {"limit": "²"}).status_code == 400


def test_an_earlier_deployed_at_is_kept_and_lists_newest_first(classes, make_user):
    client = _token_client(make_user("ci", Role.VIEWER), ["deploy:docs", "read"])
    earlier = (timezone.now() - timedelta(hours=2)).isoformat()
    client.post(URL, {"version": "v1", "deployed_at": earlier}, format="json")
    client.post(URL, {"version": "v2"}, format="json")
    assert [d["version"] for d in client.get(URL).json()] == ["v2", "v1"]


def test_a_comparison_around_a_deployment_takes_the_hours_before_and_after(classes, make_user):
    from tests.workloads.telemetry_doubles import FakeMetrics, installed_metrics
    from workloads.providers.base import MetricKind
    from workloads.services.polling import metrics_poll

    now = timezone.now().replace(second=0, microsecond=0)
    deployed_at = now - timedelta(minutes=90)
    with installed_metrics(FakeMetrics()) as metrics:
        # Before the deployment 10 failures a minute, after it none.
        metrics.set(MetricKind.COMPLETED, lambda slug, end: 20.0)
        metrics.set(MetricKind.FAILED, lambda slug, end: 10.0 if end <= deployed_at else 0.0)
        metrics_poll(now=now, window_minutes=180)
    client = _token_client(make_user("reader", Role.VIEWER), ["read", "deploy:docs"])
    deployment_id = client.post(URL, {"version": "v5", "deployed_at": deployed_at.isoformat()}, format="json").json()[
        "id"
    ]
    body = client.get("/api/v1/comparisons", {"deployment": deployment_id, "hours": 1}).json()
    assert body["a"]["start"].startswith((deployed_at - timedelta(hours=1)).isoformat()[:16])
    assert body["a"]["end"].startswith(deployed_at.isoformat()[:16]) and body["b"]["start"] == body["a"]["end"]
    assert body["a"]["failed"] == 600 and body["b"]["failed"] == 0 and body["b"]["completed"] == 20 * 60
    assert body["failure_rate_change"] < 0
    assert client.get("/api/v1/comparisons", {"deployment": 999999}).status_code == 400
    assert client.get("/api/v1/comparisons", {"deployment": deployment_id, "hours": 25}).status_code == 400
