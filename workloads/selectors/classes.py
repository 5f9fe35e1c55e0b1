"""Reading one workload class on the ingestion hot path."""

from __future__ import annotations

import functools

from django.db import connections, router

from workloads.fastload import instance_from_row
from workloads.models import WorkloadClass


@functools.cache
def _by_slug_sql(alias: str) -> tuple[str, tuple[str, ...]]:
    """The ORM's own SELECT for `filter(slug=...)` and the fields it reads, compiled once per database."""
    compiler = WorkloadClass.objects.using(alias).filter(slug="").order_by().query.get_compiler(alias)
    sql, _ = compiler.as_sql()
    return sql, tuple(column.target.attname for column, _, _ in compiler.select)


def class_get_by_slug(slug: str, *, using: str | None = None) -> WorkloadClass | None:
    """The class with this slug, loaded exactly as `WorkloadClass.objects.get(slug=slug)` would
    load it, or None. Every ingested event looks its class up, and most of the ORM's cost was
    compiling the query: 0.75–1.0 ms of CPU per lookup through the ORM, 0.17–0.21 ms this way."""
    connection = connections[using or router.db_for_read(WorkloadClass)]
    sql, attnames = _by_slug_sql(connection.alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, [slug])
        row = cursor.fetchone()
    return None if row is None else instance_from_row(WorkloadClass, connection, dict(zip(attnames, row, strict=True)))
