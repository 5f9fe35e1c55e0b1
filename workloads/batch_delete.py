"""Deleting many rows without holding locks for long: the prunes' one way to delete."""

from django.db import transaction
from django.db.models import QuerySet

DEFAULT_BATCH_SIZE = 2000


def delete_in_batches(queryset: QuerySet, *, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Delete the rows the queryset selects, `batch_size` at a time, each batch in its own short
    transaction, and return how many rows of the queryset's model went (cascaded rows not counted).

    One DELETE of a large backlog would lock every row it touches until it commits and block
    writers meanwhile; small batches let ingestion and the workers interleave. Each batch re-applies
    the queryset's own filter, so a row that stopped matching since it was selected stays."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    label = queryset.model._meta.label
    database = queryset.db
    deleted = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic(using=database):
            _, by_model = queryset.filter(pk__in=ids).delete()
        deleted += by_model.get(label, 0)
        if len(ids) < batch_size:
            return deleted
