"""Labels on a class's cloud resources follow Google's label rules, whatever the class says."""

import re

from tests.factories import WorkloadClassFactory
from workloads.providers.labels import MAX_LABEL_CHARS, label_value
from workloads.providers.specs import queue_spec

ALLOWED = re.compile(r"[a-z0-9_-]{0,63}")


def test_label_values_are_sanitized_to_googles_rules():
    assert label_value("Data Platform (EU)") == "data-platform--eu-"
    assert label_value("équipe.ventes") == "-quipe-ventes"
    assert label_value("x" * 100) == "x" * MAX_LABEL_CHARS
    for text in ("Data Platform (EU)", "équipe.ventes", "A/B", "x" * 100, ""):
        assert ALLOWED.fullmatch(label_value(text))


def test_a_class_spec_carries_class_team_tier_and_managed_by(db):
    workload_class = WorkloadClassFactory(slug="doc-render", owner_team="Data Platform (EU)", tier="deferrable")
    assert dict(queue_spec(workload_class).labels) == {
        "class": "doc-render",
        "team": "data-platform--eu-",
        "tier": "deferrable",
        "managed-by": "controlplane",
    }


def test_the_class_form_states_the_storage_cost_of_retained_acked_messages(admin_client):
    response = admin_client.get("/admin/workloads/workloadclass/add/")
    assert response.status_code == 200
    assert "retain_acked_messages" in response.content.decode()
    assert "backlog storage" in response.content.decode()
