"""Filter fields shared by the API's filter sets."""

from datetime import UTC

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from workloads.models import Environment


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, converted to UTC before it reaches the query. PostgreSQL refuses
    offsets beyond +-15:59 that Python accepts ("2026-01-01T00:00:00-22:00" was a 500)."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValidationError("This date-time is out of range.", code="overflow") from None


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


def environment_filter(field_name: str = "environment") -> django_filters.ModelChoiceFilter:
    """`?environment=<slug>`: only what belongs to that environment's classes; an unknown slug is a 400
    naming the choice, not an empty list that looks like a quiet environment."""
    return django_filters.ModelChoiceFilter(
        field_name=field_name,
        queryset=Environment.objects.all(),
        to_field_name="slug",
        help_text="An environment's slug (GET /api/v1/environments/).",
    )
