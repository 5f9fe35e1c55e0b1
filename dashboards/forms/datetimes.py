"""A time typed into the browser's datetime-local input, read as UTC: the seek's target (pool.py)
and the audit log's range (audit.py) share it."""

from datetime import UTC, datetime

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

# What a datetime-local input sends (to the minute, or to the second when `step` asks for it), and
# the shorter forms people type into a query string. ISO 8601 with an offset parses too.
INPUT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]
WIDGET_FORMAT = "%Y-%m-%dT%H:%M"


class UtcDateTimeField(forms.DateTimeField):
    """An aware datetime in UTC. The browser sends the wall time it was given, without a zone, and
    the screens label these inputs "(UTC)", so a zone-less value is UTC whatever time zone is
    active; a value with an offset keeps its instant. Shown back in UTC, to the minute."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=WIDGET_FORMAT)
    input_formats = INPUT_FORMATS

    def to_python(self, value) -> datetime | None:
        with timezone.override(UTC):  # Django reads a zone-less value in the active zone: make it UTC
            moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before datetime's first moment in UTC
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None

    def prepare_value(self, value):
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value
