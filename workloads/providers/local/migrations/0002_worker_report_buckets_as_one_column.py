"""A worker report's latency bucket counts move from rows of their own (LocalWorkerReportBucket, one
per non-empty bucket) into one column of the report (a bigint[] on PostgreSQL, a JSON array
elsewhere), so the poll's fold adds them up without joining and pivoting a row per bucket.

Forward: the column is added, each report's rows become its LATENCY_BUCKET_BOUNDS + 1 counts (zeros
for the empty buckets; [] for a report without any row, as the fold reads an empty histogram), and
the bucket table is dropped. Backward: the table is made again and each non-zero count becomes a row."""

import json

from django.db import migrations

import workloads.providers.local.models

# len(LATENCY_BUCKET_BOUNDS) + 1 when this was written (workloads/providers/base.py); a migration
# keeps its own copy, so a later change of the bounds does not rewrite history.
BUCKETS = 41
REPORTS = "workloads_localworkerreport"
BUCKET_ROWS = "workloads_localworkerreportbucket"


def buckets_into_column(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement where the rows are: the counts in bucket order, zero where no row.
            cursor.execute(
                f"""
                UPDATE {REPORTS} r SET latency_buckets = a.counts
                  FROM (SELECT b.report_id,
                               array_agg(COALESCE(c.count, 0) ORDER BY i.i) AS counts
                          FROM (SELECT DISTINCT report_id FROM {BUCKET_ROWS}) b
                         CROSS JOIN generate_series(0, %s) AS i (i)
                          LEFT JOIN {BUCKET_ROWS} c ON c.report_id = b.report_id AND c."index" = i.i
                         GROUP BY b.report_id) a
                 WHERE r.id = a.report_id
                """,
                [BUCKETS - 1],
            )
            return
        cursor.execute(f'SELECT report_id, "index", "count" FROM {BUCKET_ROWS} ORDER BY report_id')
        counts: dict[int, list[int]] = {}
        for report_id, index, count in cursor.fetchall():
            counts.setdefault(report_id, [0] * BUCKETS)[index] = count
        cursor.executemany(
            f"UPDATE {REPORTS} SET latency_buckets = %s WHERE id = %s",
            [(json.dumps(values), report_id) for report_id, values in counts.items()],
        )


def column_into_buckets(apps, schema_editor):
    Report = apps.get_model("localcloud", "LocalWorkerReport")
    Bucket = apps.get_model("localcloud", "LocalWorkerReportBucket")
    database = schema_editor.connection.alias
    rows = []
    for report_id, counts in Report.objects.using(database).values_list("pk", "latency_buckets").iterator(2000):
        rows += [
            Bucket(report_id=report_id, index=index, count=count) for index, count in enumerate(counts or []) if count
        ]
        if len(rows) >= 5000:
            Bucket.objects.using(database).bulk_create(rows)
            rows = []
    Bucket.objects.using(database).bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [
        ("localcloud", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="localworkerreport",
            name="latency_buckets",
            field=workloads.providers.local.models.BucketCountsField(default=list),
        ),
        migrations.RunPython(buckets_into_column, column_into_buckets, elidable=False),
        migrations.DeleteModel(
            name="LocalWorkerReportBucket",
        ),
    ]
