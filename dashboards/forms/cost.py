"""The cost screen's period and grouping."""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django import forms
from django.core.exceptions import ValidationError

COST_PRESETS = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days", "custom": "Custom"}


MAX_COST_DAYS = 400  # what GET /api/v1/cost accepts


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    label: str


class CostForm(forms.Form):
    """The cost screen's period and grouping. Custom dates are whole UTC days, both included."""

    period = forms.ChoiceField(choices=list(COST_PRESETS.items()), required=False, widget=forms.RadioSelect)
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (included)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(
        label="Group by", choices=[("class", "Class"), ("team", "Team")], required=False, widget=forms.RadioSelect
    )

    def clean(self):
        data = super().clean()
        if data.get("period") == "custom":
            start, end = data.get("start"), data.get("end")
            if not start or not end:
                raise ValidationError("A custom period needs both a start and an end date.")
            if start > end:
                raise ValidationError("The start date must not be after the end date.")
            if (end - start).days + 1 > MAX_COST_DAYS:
                raise ValidationError(f"A period may span at most {MAX_COST_DAYS} days.")
        return data

    def grouping(self) -> str:
        return (self.cleaned_data.get("group_by") if self.is_valid() else "") or "class"

    def period_range(self, now: datetime) -> Period:
        """The chosen period; today (since midnight UTC) when the form is empty or invalid."""
        preset = (self.cleaned_data.get("period") if self.is_valid() else "") or "today"
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if preset == "7d":
            return Period(now - timedelta(days=7), now, COST_PRESETS["7d"])
        if preset == "30d":
            return Period(now - timedelta(days=30), now, COST_PRESETS["30d"])
        if preset == "custom":
            start = datetime.combine(self.cleaned_data["start"], time.min, tzinfo=UTC)
            end = min(datetime.combine(self.cleaned_data["end"], time.min, tzinfo=UTC) + timedelta(days=1), now)
            if end <= start:  # a custom period entirely in the future has nothing to report yet
                end = start + timedelta(seconds=1)
            label = f"{self.cleaned_data['start']:%d %b %Y} – {self.cleaned_data['end']:%d %b %Y}"
            return Period(start, end, label)
        return Period(midnight, now, COST_PRESETS["today"])
