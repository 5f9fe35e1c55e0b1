"""The local provider's tables move from the `workloads` app's state into this app's, and nothing
happens in the database: the tables were created by workloads' migrations (0005_local and those
after it) and keep their names (db_table), rows, indexes, constraints and sequences. On a new
database those migrations create them first (the dependency below), then this takes them over.

Content types follow the models, so permissions given on them stay attached."""

import django.db.models.deletion
from django.db import migrations, models

LOCAL_MODELS = (
    "localtopic",
    "localsubscription",
    "localmessage",
    "localdelivery",
    "localsnapshot",
    "localsnapshotmessage",
    "localworkerpool",
    "localpoolchange",
    "localworkerreport",
    "localworkerreportbucket",
)


def _relabel(apps, schema_editor, old: str, new: str) -> None:
    # The database being migrated, not `default` (the tests migrate a SQLite database beside it).
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(schema_editor.connection.alias)
    for model in LOCAL_MODELS:
        if content_types.filter(app_label=new, model=model).exists():  # already made (post_migrate)
            continue
        content_types.filter(app_label=old, model=model).update(app_label=new)


def content_types_forward(apps, schema_editor):
    _relabel(apps, schema_editor, "workloads", "localcloud")


def content_types_backward(apps, schema_editor):
    _relabel(apps, schema_editor, "localcloud", "workloads")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        # The last of workloads' migrations before the move: every local table exists as it is now.
        ("workloads", "0026_pool_unhealthy_incidents"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="LocalTopic",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("name", models.CharField(help_text="projects/P/topics/T", max_length=300, unique=True)),
                        ("created_at", models.DateTimeField()),
                    ],
                    options={
                        "db_table": "workloads_localtopic",
                    },
                ),
                migrations.CreateModel(
                    name="LocalWorkerPool",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "name",
                            models.CharField(
                                help_text="projects/P/locations/L/workerPools/W", max_length=300, unique=True
                            ),
                        ),
                        (
                            "slug",
                            models.CharField(
                                db_index=True, help_text="The workload class the workers run.", max_length=48
                            ),
                        ),
                        ("instance_count", models.PositiveIntegerField(default=0)),
                        ("generation", models.PositiveBigIntegerField(default=1)),
                        ("last_modifier", models.CharField(blank=True, max_length=150)),
                        ("update_time", models.DateTimeField()),
                        ("created_at", models.DateTimeField()),
                        ("exits_in_row", models.PositiveIntegerField(default=0)),
                        ("last_exit_at", models.DateTimeField(blank=True, null=True)),
                        ("last_exit_code", models.IntegerField(blank=True, null=True)),
                        ("revision", models.CharField(blank=True, max_length=100)),
                    ],
                    options={
                        "db_table": "workloads_localworkerpool",
                    },
                ),
                migrations.CreateModel(
                    name="LocalSubscription",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("name", models.CharField(help_text="projects/P/subscriptions/S", max_length=300, unique=True)),
                        ("ack_deadline_seconds", models.PositiveIntegerField(default=10)),
                        ("max_delivery_attempts", models.PositiveIntegerField(default=0)),
                        ("min_backoff_seconds", models.PositiveIntegerField(default=0)),
                        ("max_backoff_seconds", models.PositiveIntegerField(default=0)),
                        ("ordering", models.BooleanField(default=False)),
                        ("retention_seconds", models.PositiveIntegerField(default=604800)),
                        ("created_at", models.DateTimeField()),
                        ("updated_at", models.DateTimeField()),
                        (
                            "dead_letter_topic",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="dead_letter_sources",
                                to="localcloud.localtopic",
                            ),
                        ),
                        (
                            "topic",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="subscriptions",
                                to="localcloud.localtopic",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "workloads_localsubscription",
                    },
                ),
                migrations.CreateModel(
                    name="LocalSnapshot",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("name", models.CharField(help_text="projects/P/snapshots/S", max_length=300, unique=True)),
                        ("created_at", models.DateTimeField()),
                        ("expire_time", models.DateTimeField()),
                        (
                            "subscription",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="snapshots",
                                to="localcloud.localsubscription",
                            ),
                        ),
                        (
                            "topic",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="snapshots",
                                to="localcloud.localtopic",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "workloads_localsnapshot",
                    },
                ),
                migrations.CreateModel(
                    name="LocalMessage",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("data", models.BinaryField()),
                        ("attributes", models.JSONField(default=dict)),
                        ("ordering_key", models.CharField(blank=True, max_length=1024)),
                        ("published_at", models.DateTimeField()),
                        (
                            "topic",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="messages",
                                to="localcloud.localtopic",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "workloads_localmessage",
                    },
                ),
                migrations.CreateModel(
                    name="LocalWorkerReport",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("slug", models.CharField(max_length=48)),
                        ("worker_pool", models.CharField(blank=True, max_length=300)),
                        ("instance_id", models.CharField(blank=True, max_length=200)),
                        ("interval_start", models.DateTimeField()),
                        ("interval_end", models.DateTimeField()),
                        ("interval_end_ms", models.BigIntegerField()),
                        ("completed", models.PositiveBigIntegerField(default=0)),
                        ("failed", models.PositiveBigIntegerField(default=0)),
                        ("records", models.PositiveBigIntegerField(default=0)),
                        ("tokens", models.PositiveBigIntegerField(default=0)),
                        ("latency_count", models.PositiveBigIntegerField(default=0)),
                        ("latency_sum", models.FloatField(default=0.0)),
                    ],
                    options={
                        "db_table": "workloads_localworkerreport",
                        "indexes": [
                            models.Index(fields=["slug", "interval_end_ms"], name="localworkerreport_slug_end")
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="LocalSnapshotMessage",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "message",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="snapshot_entries",
                                to="localcloud.localmessage",
                            ),
                        ),
                        (
                            "snapshot",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="entries",
                                to="localcloud.localsnapshot",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "workloads_localsnapshotmessage",
                        "constraints": [
                            models.UniqueConstraint(fields=("snapshot", "message"), name="localsnapshotmessage_once")
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="LocalDelivery",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("ordering_key", models.CharField(blank=True, max_length=1024)),
                        ("published_at", models.DateTimeField()),
                        (
                            "attempts",
                            models.PositiveIntegerField(default=0, help_text="Deliveries so far (leases handed out)."),
                        ),
                        ("visible_at", models.DateTimeField(help_text="Leasable from then on, unless acked.")),
                        (
                            "lease_token",
                            models.CharField(
                                blank=True, help_text="Half of the current lease's ack id.", max_length=32
                            ),
                        ),
                        ("acked_at", models.DateTimeField(blank=True, null=True)),
                        ("dead_lettered", models.BooleanField(default=False)),
                        (
                            "message",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="deliveries",
                                to="localcloud.localmessage",
                            ),
                        ),
                        (
                            "subscription",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="deliveries",
                                to="localcloud.localsubscription",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "workloads_localdelivery",
                        "indexes": [
                            models.Index(
                                condition=models.Q(("acked_at__isnull", True)),
                                fields=["subscription", "message"],
                                name="localdelivery_unacked",
                            ),
                            models.Index(
                                condition=models.Q(("acked_at__isnull", True)),
                                fields=["subscription", "ordering_key", "message"],
                                name="localdelivery_unacked_key",
                            ),
                            models.Index(fields=["subscription", "published_at"], name="localdelivery_published"),
                            models.Index(fields=["subscription", "acked_at"], name="localdelivery_acked"),
                        ],
                        "constraints": [
                            models.UniqueConstraint(fields=("subscription", "message"), name="localdelivery_once")
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="LocalPoolChange",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("instance_count", models.PositiveIntegerField()),
                        ("generation", models.PositiveBigIntegerField()),
                        ("changed_at", models.DateTimeField()),
                        ("modifier", models.CharField(blank=True, max_length=150)),
                        ("reason", models.CharField(blank=True, max_length=500)),
                        (
                            "pool",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="changes",
                                to="localcloud.localworkerpool",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "workloads_localpoolchange",
                        "indexes": [models.Index(fields=["pool", "changed_at"], name="localpoolchange_pool_time")],
                    },
                ),
                migrations.CreateModel(
                    name="LocalWorkerReportBucket",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("index", models.PositiveSmallIntegerField()),
                        ("count", models.PositiveBigIntegerField()),
                        (
                            "report",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="buckets",
                                to="localcloud.localworkerreport",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "workloads_localworkerreportbucket",
                        "constraints": [
                            models.UniqueConstraint(fields=("report", "index"), name="localworkerreportbucket_once")
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(content_types_forward, content_types_backward),
    ]
