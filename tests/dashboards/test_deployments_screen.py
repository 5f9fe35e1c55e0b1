"""Deployments on the class page: recorded with the form (operators), listed, marked on every
chart and in the marker list, refused for viewers and with bad input; in the audit log."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.dashboards.helpers import BREACHED_SLUG
from workloads.models import AuditEvent, Deployment, DeploymentSource, WorkloadClass
from workloads.services.deployments import deployment_record


@pytest.fixture
def demo_fleet(demo_fleet_of_the_module):
    """Seeded once for the module, whose every test uses it (tests/dashboards/conftest.py)."""


URL = f"/classes/{BREACHED_SLUG}/"
POST_URL = f"/classes/{BREACHED_SLUG}/deployments/"


def _payloads(html: str) -> dict[str, dict]:
    found = re.findall(r'<script id="chart-data-([a-z_-]+)" type="application/json">(.*?)</script>', html)
    return {key: json.loads(body) for key, body in found}


def test_an_operator_records_a_deployment_and_every_chart_marks_it(ui_client, operator, polled_fleet):
    client = ui_client(operator)
    response = client.post(POST_URL, {"version": "v7.1", "commit": "9fceb02", "link": "https://ci.example.com/1"})
    assert response.status_code == 302 and response["Location"].startswith(URL)
    deployment = Deployment.objects.get()
    assert deployment.source == DeploymentSource.UI and deployment.deployed_by == "otto-operator"
    event = AuditEvent.objects.get(action="deployment.record")
    assert event.via == "ui" and event.workload_class_slug == BREACHED_SLUG

    html = client.get(URL).content.decode()
    assert "Deployment v7.1 recorded" in html
    charts = _payloads(html)
    assert charts and all(
        any(m["kind"] == "deploy" and m["label"] == "deploy v7.1 (otto-operator)" for m in chart["markers"])
        for chart in charts.values()
    )
    marker_list = html[html.index('class="chart-markers"') :]
    assert '<li class="marker-deploy">' in marker_list and "deploy v7.1 (otto-operator)" in marker_list
    section = html[html.index('id="deployments-title"') : html.index('id="changes-title"')]
    assert "v7.1" in section and "9fceb02" in section and 'href="https://ci.example.com/1"' in section
    assert "Record a deployment" in section
    # The audit log lists it too.
    audit = client.get("/audit/", {"workload_class": BREACHED_SLUG}).content.decode()
    assert "deployment" in audit and "v7.1" in audit


def test_a_deployment_outside_the_range_is_not_marked(ui_client, viewer, polled_fleet):
    wc = WorkloadClass.objects.get(slug=BREACHED_SLUG)
    now = timezone.now()
    deployment_record(
        workload_class=wc,
        actor=None,
        source=DeploymentSource.API,
        now=now,
        version="old",
        deployed_at=now - timedelta(days=3),
    )
    html = ui_client(viewer).get(URL + "?range=6h").content.decode()
    assert not any(m["kind"] == "deploy" for chart in _payloads(html).values() for m in chart["markers"])
    section = html[html.index('id="deployments-title"') : html.index('id="changes-title"')]
    assert "old" in section and "Record a deployment" not in section  # listed, but no form for a viewer


def test_viewers_may_not_record_and_bad_input_records_nothing(ui_client, viewer, operator, polled_fleet):
    assert ui_client(viewer).post(POST_URL, {"version": "v1"}).status_code == 403
    client = ui_client(operator)
    response = client.post(POST_URL, {"commit": "zzz", "link": "javascript:alert(1)"}, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "The deployment was not recorded." in html and "commit:" in html and "link:" in html
    assert not Deployment.objects.exists()
    response = client.post(POST_URL, {"version": "v1\x00"}, follow=True)
    assert response.status_code == 200 and "version: No control characters." in response.content.decode()
    assert not Deployment.objects.exists()
    assert client.post("/classes/nope/deployments/", {"version": "v1"}).status_code == 404
    assert client.get(POST_URL).status_code == 405


def test_the_comparison_screen_compares_the_hour_before_and_after_a_deployment(ui_client, viewer, polled_fleet):
    wc = WorkloadClass.objects.get(slug=BREACHED_SLUG)
    now = timezone.now()
    deployment = deployment_record(
        workload_class=wc,
        actor=None,
        source=DeploymentSource.API,
        now=now,
        version="v8",
        deployed_at=now - timedelta(minutes=90),
    )
    client = ui_client(viewer)
    page = client.get(URL).content.decode()
    assert f'href="/compare/?deployment={deployment.pk}&amp;hours=1"' in page
    html = client.get("/compare/", {"deployment": deployment.pk, "hours": 1}).content.decode()
    assert "Deployment v8</strong>" in html and "A is the 1 hour before it, B the 1 hour after" in html
    assert 'class="grid comparison' in html
    assert client.get("/compare/", {"deployment": 999999}).status_code == 404
    assert client.get("/compare/", {"deployment": deployment.pk, "hours": "x"}).status_code == 400
    assert client.get("/compare/", {"deployment": "²", "hours": "1"}).status_code == 400
    assert client.get("/compare/", {"deployment": "9" * 30}).status_code == 400
    assert client.get("/compare/", {"deployment": deployment.pk, "hours": 48}).status_code == 400
