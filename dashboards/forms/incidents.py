"""Incident mode (enter, exit) and the migration comparison."""

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.core.exceptions import ValidationError

from dashboards.forms.expiry import ExpiryField, expiry_choices
from workloads.models import WorkloadClass


class IncidentEnterForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=2000,
        help_text="Shown in the banner on every page and kept in the audit log.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. primary database failover"}),
    )
    ticket = forms.CharField(label="Ticket", required=False, max_length=200)
    expires_in_minutes = ExpiryField()

    def __init__(self, *args, default_minutes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_in_minutes"].choices = expiry_choices(default_minutes=default_minutes)
        self.fields["expires_in_minutes"].initial = default_minutes

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("Say why.")
        return reason


class ExitForm(forms.Form):
    reason = forms.CharField(label="Reason", required=False, max_length=2000)


MAX_COMPARE_DAYS = 400


class CompareForm(forms.Form):
    """Two periods (whole UTC days, both included) of one class, or of two classes."""

    a_class = forms.ChoiceField(label="Class A")
    a_start = forms.DateField(label="A from", widget=forms.DateInput(attrs={"type": "date"}))
    a_end = forms.DateField(label="A to (included)", widget=forms.DateInput(attrs={"type": "date"}))
    b_class = forms.ChoiceField(label="Class B", required=False)
    b_start = forms.DateField(label="B from", widget=forms.DateInput(attrs={"type": "date"}))
    b_end = forms.DateField(label="B to (included)", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, classes: list[WorkloadClass], **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(wc.slug, f"{wc.name} ({wc.slug})") for wc in classes]
        self.fields["a_class"].choices = choices
        self.fields["b_class"].choices = [("", "Same as A"), *choices]

    def clean(self):
        data = super().clean()
        for side in ("a", "b"):
            start, end = data.get(f"{side}_start"), data.get(f"{side}_end")
            if start and end:
                if start > end:
                    self.add_error(f"{side}_end", "The end must not be before the start.")
                elif (end - start).days + 1 > MAX_COMPARE_DAYS:
                    self.add_error(f"{side}_end", f"A period may span at most {MAX_COMPARE_DAYS} days.")
        return data

    @staticmethod
    def bounds(start, end, now: datetime) -> tuple[datetime, datetime]:
        """[start 00:00, end + 1 day 00:00) in UTC, cut at now."""
        first = datetime.combine(start, time.min, tzinfo=UTC)
        last = min(datetime.combine(end, time.min, tzinfo=UTC) + timedelta(days=1), now)
        return first, max(last, first + timedelta(seconds=1))
