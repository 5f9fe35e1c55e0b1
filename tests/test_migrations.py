from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_models_and_migrations_agree(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_the_role_groups_exist(db):
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"viewer", "operator", "admin"}


BEFORE_THE_MOVE = [("workloads", "0029_runtime_metrics_backfill"), ("localcloud", None)]
AFTER_THE_MOVE = ("localcloud", "0001_initial")
BUCKETS_AS_ROWS = [AFTER_THE_MOVE]


@pytest.mark.django_db(transaction=True)
def test_the_local_tables_move_to_the_localcloud_app_with_their_rows():
    """A database from before the local provider's models became the app `localcloud` migrates:
    the rows written then are read through the new models, and no table is created, renamed or
    dropped (the move is state only)."""
    from workloads.providers.local.models import LocalMessage, LocalTopic

    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    tables_now = set(connection.introspection.table_names())
    # Right after the move, before localcloud's own later migrations (which may add or drop tables).
    executor.migrate([AFTER_THE_MOVE])
    tables_at_the_move = set(connection.introspection.table_names())
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_THE_MOVE)
    try:
        old = MigrationExecutor(connection).loader.project_state(BEFORE_THE_MOVE[0]).apps
        assert old.get_model("workloads", "LocalTopic")._meta.db_table == "workloads_localtopic"
        topic = old.get_model("workloads", "LocalTopic").objects.create(name="projects/p/topics/t", created_at=NOW)
        old.get_model("workloads", "LocalMessage").objects.create(
            topic_id=topic.pk, data=b"kept", attributes={"a": "1"}, published_at=NOW
        )
        assert set(connection.introspection.table_names()) == tables_at_the_move
    finally:
        MigrationExecutor(connection).migrate(leaves)
    assert set(connection.introspection.table_names()) == tables_now
    [message] = LocalMessage.objects.select_related("topic")
    assert (message.topic.name, bytes(message.data), message.attributes) == ("projects/p/topics/t", b"kept", {"a": "1"})
    assert LocalTopic._meta.app_label == "localcloud"
    new_topic = LocalTopic.objects.create(name="projects/p/topics/u", created_at=NOW)  # the sequence carries on
    assert new_topic.pk > topic.pk
    state = MigrationExecutor(connection).loader.project_state(leaves)
    assert not [model for app, model in state.models if app == "workloads" and model.startswith("local")]


@pytest.mark.django_db(transaction=True)
def test_worker_report_buckets_move_into_one_column_and_back():
    """localcloud 0002: each report's bucket rows become its counts in one column (zeros where no
    row; [] for a report without rows), and back again (a row per non-zero count)."""
    from workloads.providers.local.models import LocalWorkerReport

    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(BUCKETS_AS_ROWS)
    try:
        old = MigrationExecutor(connection).loader.project_state(BUCKETS_AS_ROWS).apps
        Report, Bucket = (
            old.get_model("localcloud", "LocalWorkerReport"),
            old.get_model("localcloud", "LocalWorkerReportBucket"),
        )
        fields = dict(interval_start=NOW, interval_end=NOW, interval_end_ms=0)
        busy = Report.objects.create(slug="busy", **fields)
        Report.objects.create(slug="quiet", **fields)
        Bucket.objects.bulk_create(
            [Bucket(report_id=busy.pk, index=0, count=3), Bucket(report_id=busy.pk, index=40, count=2)]
        )
    finally:
        MigrationExecutor(connection).migrate(leaves)
    counts = dict(LocalWorkerReport.objects.values_list("slug", "latency_buckets"))
    assert counts == {"busy": [3, *[0] * 39, 2], "quiet": []}

    MigrationExecutor(connection).migrate(BUCKETS_AS_ROWS)
    try:
        old = MigrationExecutor(connection).loader.project_state(BUCKETS_AS_ROWS).apps
        rows = old.get_model("localcloud", "LocalWorkerReportBucket").objects.order_by("index")
        assert [(row.report_id, row.index, row.count) for row in rows] == [(busy.pk, 0, 3), (busy.pk, 40, 2)]
        assert old.get_model("localcloud", "LocalWorkerReport").objects.count() == 2
    finally:
        MigrationExecutor(connection).migrate(leaves)
