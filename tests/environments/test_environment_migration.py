"""The upgrade: classes that existed before environments join the default one, built from the
settings they ran under plus every project and region their resource names already use."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("workloads", "0026_pool_unhealthy_incidents")]
AFTER = [("workloads", "0027_environments")]


@pytest.mark.django_db(transaction=True)
def test_existing_classes_join_the_default_environment_and_stay_valid(settings):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    OldClass = old_apps.get_model("workloads", "WorkloadClass")
    common = {"owner_team": "ops", "payload_schema": {"type": "object"}, "idempotency_key_template": "{x}"}
    OldClass.objects.create(slug="kept-here", name="Here", **common)
    OldClass.objects.create(
        slug="kept-there",
        name="There",
        topic="projects/other-project/topics/kept-there",
        worker_pool="projects/other-project/locations/asia-east1/workerPools/kept-there",
        **common,
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new_apps = executor.loader.project_state(AFTER).apps
    NewClass = new_apps.get_model("workloads", "WorkloadClass")
    environment = new_apps.get_model("workloads", "Environment").objects.get()
    assert environment.slug == settings.DEFAULT_ENVIRONMENT
    assert environment.projects == [settings.GOOGLE_CLOUD_PROJECT, "other-project"]
    assert environment.regions == [settings.GOOGLE_CLOUD_REGION, "asia-east1"]
    assert environment.monitoring_project == settings.GOOGLE_CLOUD_PROJECT
    assert set(NewClass.objects.values_list("environment_id", flat=True)) == {environment.pk}

    # Back to the latest state for the tests that follow in this database.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
