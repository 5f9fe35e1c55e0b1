"""The local provider's models leave this app's state for the app `localcloud`
(workloads/providers/local/migrations/0001_initial.py), which keeps their tables as they are: no
table is dropped or renamed here (state only)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("workloads", "0029_runtime_metrics_backfill"),
        ("localcloud", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.RemoveField(
                    model_name="localmessage",
                    name="topic",
                ),
                migrations.RemoveField(
                    model_name="localsnapshotmessage",
                    name="message",
                ),
                migrations.RemoveField(
                    model_name="localpoolchange",
                    name="pool",
                ),
                migrations.RemoveField(
                    model_name="localsnapshot",
                    name="subscription",
                ),
                migrations.RemoveField(
                    model_name="localsnapshot",
                    name="topic",
                ),
                migrations.RemoveField(
                    model_name="localsnapshotmessage",
                    name="snapshot",
                ),
                migrations.RemoveField(
                    model_name="localsubscription",
                    name="dead_letter_topic",
                ),
                migrations.RemoveField(
                    model_name="localsubscription",
                    name="topic",
                ),
                migrations.RemoveField(
                    model_name="localworkerreportbucket",
                    name="report",
                ),
                migrations.DeleteModel(
                    name="LocalDelivery",
                ),
                migrations.DeleteModel(
                    name="LocalMessage",
                ),
                migrations.DeleteModel(
                    name="LocalPoolChange",
                ),
                migrations.DeleteModel(
                    name="LocalWorkerPool",
                ),
                migrations.DeleteModel(
                    name="LocalSnapshot",
                ),
                migrations.DeleteModel(
                    name="LocalSnapshotMessage",
                ),
                migrations.DeleteModel(
                    name="LocalSubscription",
                ),
                migrations.DeleteModel(
                    name="LocalTopic",
                ),
                migrations.DeleteModel(
                    name="LocalWorkerReport",
                ),
                migrations.DeleteModel(
                    name="LocalWorkerReportBucket",
                ),
            ],
        ),
    ]
