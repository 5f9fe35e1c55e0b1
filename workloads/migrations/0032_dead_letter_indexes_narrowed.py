# The dead-letter table drops the indexes no query needs and keeps those of mostly empty foreign
# keys to the rows that have one. Every status change of a row (a replay marks thousands) is an
# update no index can skip (the status is indexed), so each index costs on every mark: 14 -> 8
# written by a replay's mark (the partial ones are not written for rows whose key is NULL).
#
# Dropped, and what serves their queries now (EXPLAIN on 200k rows in 40 classes, before/after):
# - the class's own FK index (workload_class_id): every other index on the table starts with the
#   class (one_dead_letter_per_message, and the three below), so the class's lookups, counts and
#   the cascade of a class deletion use those;
# - the triage rule's own FK index (triage_rule_id): the (triage_rule, triaged_at) index starts
#   with it (the rule's rate-limit count and SET_NULL when a rule is deleted);
# - the LIKE twin of the idempotency key's index (varchar_pattern_ops): the key is only looked
#   up by equality (the API's ?idempotency_key=); its search is a case-insensitive substring
#   match, which no btree serves.
# Made partial (WHERE <fk> IS NOT NULL): replay_action (the replay outcomes' lookup, SET_NULL
# when actions are pruned), triage_rule with triaged_at, discarded_by and edited_by (SET_NULL
# when a user is deleted). Those queries all name a value, so PostgreSQL and SQLite use the
# partial index for them; rows without one are left out of it.
#
# Django's own names for the dropped indexes (db_index=True fields), the same on every backend;
# the LIKE twin exists on PostgreSQL only. The foreign-key constraints themselves are untouched
# (the AlterFields change the state only, so no constraint is dropped and re-validated).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

TABLE = "workloads_deadletter"
FIELD_INDEXES = {
    "workloads_deadletter_workload_class_id_4c071e72": "workload_class_id",
    "workloads_deadletter_triage_rule_id_57b13b35": "triage_rule_id",
    "workloads_deadletter_replay_action_id_0b0c6ae0": "replay_action_id",
    "workloads_deadletter_discarded_by_id_efc2e583": "discarded_by_id",
    "workloads_deadletter_edited_by_id_428158e2": "edited_by_id",
    "workloads_deadletter_idempotency_key_7877014d": "idempotency_key",
}
LIKE_INDEX = "workloads_deadletter_idempotency_key_7877014d_like"


def drop_field_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    for name in [*FIELD_INDEXES, LIKE_INDEX]:
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")


def restore_field_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    for name, column in FIELD_INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(TABLE)} ({quote(column)})")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(LIKE_INDEX)} ON {quote(TABLE)} "
            f"({quote('idempotency_key')} varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("workloads", "0031_incident_mode_per_environment"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="deadletter",
                    name="discarded_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="deadletter",
                    name="edited_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="deadletter",
                    name="idempotency_key",
                    field=models.CharField(blank=True, max_length=255),
                ),
                migrations.AlterField(
                    model_name="deadletter",
                    name="replay_action",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="workloads.action",
                    ),
                ),
                migrations.AlterField(
                    model_name="deadletter",
                    name="triage_rule",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="workloads.triagerule",
                    ),
                ),
                migrations.AlterField(
                    model_name="deadletter",
                    name="workload_class",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="dead_letters",
                        to="workloads.workloadclass",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_field_indexes, restore_field_indexes)],
        ),
        migrations.RemoveIndex(
            model_name="deadletter",
            name="workloads_d_triage__a5d086_idx",
        ),
        migrations.AddIndex(
            model_name="deadletter",
            index=models.Index(fields=["idempotency_key"], name="deadletter_idempotency_key"),
        ),
        migrations.AddIndex(
            model_name="deadletter",
            index=models.Index(
                condition=models.Q(("replay_action__isnull", False)),
                fields=["replay_action"],
                name="deadletter_replay_action",
            ),
        ),
        migrations.AddIndex(
            model_name="deadletter",
            index=models.Index(
                condition=models.Q(("triage_rule__isnull", False)),
                fields=["triage_rule", "triaged_at"],
                name="deadletter_triage_rule",
            ),
        ),
        migrations.AddIndex(
            model_name="deadletter",
            index=models.Index(
                condition=models.Q(("discarded_by__isnull", False)),
                fields=["discarded_by"],
                name="deadletter_discarded_by",
            ),
        ),
        migrations.AddIndex(
            model_name="deadletter",
            index=models.Index(
                condition=models.Q(("edited_by__isnull", False)),
                fields=["edited_by"],
                name="deadletter_edited_by",
            ),
        ),
    ]
