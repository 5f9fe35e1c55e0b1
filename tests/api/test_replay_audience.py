"""The replay preview names the other subscriptions on the class topic: Pub/Sub delivers a replay
to every subscription on the topic, not only the class's workers (API and the triage panel)."""

from dataclasses import replace

import pytest
from django.test import Client
from django.utils import timezone

from controlplane.roles import Role
from tests.workloads.deadletter_helpers import event, kit_dead_letter, make_class
from workloads.providers import set_providers
from workloads.providers.base import Providers
from workloads.providers.local import LocalMetrics, LocalQueue, LocalWorkerPools
from workloads.providers.specs import queue_spec
from workloads.services.deadletter_mirror import dead_letters_sync


@pytest.fixture
def queue(db):
    queue = LocalQueue()
    set_providers(Providers(queue=queue, pools=LocalWorkerPools(), metrics=LocalMetrics(), name="local"))
    yield queue
    set_providers(None)


@pytest.fixture
def docs(queue):
    workload_class = make_class(queue, "doc-jobs")
    kit_dead_letter(queue, workload_class, event(1))
    dead_letters_sync(now=timezone.now())
    return workload_class


def _audit_subscription(queue, workload_class) -> str:
    spec = queue_spec(workload_class)
    audit = replace(
        spec,
        subscription=spec.subscription.replace("-worker", "-audit"),
        dead_letter_topic=spec.dead_letter_topic + "-audit",
        dead_letter_subscription=spec.dead_letter_subscription + "-audit",
    )
    queue.ensure_resources(audit)
    return audit.subscription


SELECTION = {"workload_class": "doc-jobs", "status": ["new"], "error_signature": "sig-unavailable"}


def test_the_api_preview_names_the_other_subscriptions(queue, docs, client_as, make_user):
    client = client_as(make_user("olive-operator", Role.OPERATOR))
    alone = client.post("/api/v1/replays/preview/", SELECTION, format="json").json()
    assert alone["replayable"] == 1 and alone["other_subscriptions"] == []
    audit = _audit_subscription(queue, docs)
    preview = client.post("/api/v1/replays/preview/", SELECTION, format="json").json()
    assert preview["other_subscriptions"] == [audit] and preview["other_subscriptions_error"] == ""


def test_the_triage_panel_says_who_else_receives_the_replay(queue, docs, make_user):
    browser = Client()
    browser.force_login(make_user("olive-operator", Role.OPERATOR))
    form = {"workload_class": "doc-jobs", "error_signature": "sig-unavailable", "all_matching": "1"}
    page = browser.post("/dead-letters/replay/", form).content.decode()
    assert "No other subscription is on" in page
    audit = _audit_subscription(queue, docs)
    page = browser.post("/dead-letters/replay/", form).content.decode()
    assert "Also delivered to 1 other subscription" in page and audit in page
