"""A class's pool and subscription panels: pause, override, seek and snapshots."""

from django import forms
from django.core import validators
from django.core.exceptions import ValidationError

from dashboards.forms.datetimes import UtcDateTimeField
from dashboards.forms.expiry import ExpiryField, expiry_choices


class SeekForm(forms.Form):
    to_time = UtcDateTimeField(label="To time (UTC)", required=False)
    snapshot = forms.CharField(
        label="Or to snapshot",
        required=False,
        max_length=255,
        widget=forms.TextInput(attrs={"list": "seek-snapshots", "autocomplete": "off"}),
    )
    reason = forms.CharField(label="Reason", required=False, max_length=2000)
    confirm = forms.BooleanField(required=False)
    accept_rerun = forms.BooleanField(required=False)

    def clean(self):
        data = super().clean()
        if not self.errors and bool(data.get("to_time")) == bool((data.get("snapshot") or "").strip()):
            raise ValidationError("Give either a time or a snapshot to seek to.")
        return data


class SnapshotForm(forms.Form):
    name = forms.CharField(label="Snapshot name", required=False, max_length=255, help_text="Default: before-deploy-…")
    reason = forms.CharField(label="Reason", required=False, max_length=2000)


class PauseForm(forms.Form):
    reason = forms.CharField(label="Reason", max_length=2000)
    expires_in_minutes = ExpiryField()

    def __init__(self, *args, retention_seconds: int, default_minutes: int, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["expires_in_minutes"]
        field.choices = expiry_choices(retention_seconds=retention_seconds, default_minutes=default_minutes)
        field.initial = default_minutes


class OverrideForm(forms.Form):
    """A manual instance count for a set time: a hold like a pause, at a count."""

    instances = forms.IntegerField(label="Instances", min_value=1)
    reason = forms.CharField(label="Reason", max_length=2000)
    expires_in_minutes = ExpiryField()

    def __init__(self, *args, max_instances: int, default_minutes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instances"].max_value = max_instances
        self.fields["instances"].validators.append(validators.MaxValueValidator(max_instances))
        self.fields["instances"].widget.attrs["max"] = max_instances
        field = self.fields["expires_in_minutes"]
        field.choices = expiry_choices(default_minutes=default_minutes)
        field.initial = default_minutes
