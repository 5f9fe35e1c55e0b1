"""The audit log's filters."""

from datetime import UTC, datetime

from django import forms


class AuditFilterForm(forms.Form):
    """Filters of the audit log. Times are UTC; invalid values are reported next to the field."""

    actor = forms.CharField(label="Actor", required=False, max_length=150)
    action = forms.CharField(label="Action", required=False, max_length=64, help_text="Exact, or a prefix.")
    workload_class = forms.CharField(label="Class", required=False, max_length=48)
    start = forms.DateTimeField(
        label="From (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    end = forms.DateTimeField(
        label="To (UTC)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["actor"].widget.attrs.update({"type": "search", "placeholder": "e.g. ada"})
        self.fields["action"].widget.attrs.update({"list": "audit-actions", "placeholder": "e.g. action.scale"})
        self.fields["workload_class"].widget.attrs.update({"list": "audit-classes", "placeholder": "slug"})

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            self.add_error("end", "“To” must be after “From”.")
        return data

    def filters(self) -> dict:
        self.is_valid()
        data = {name: value for name, value in getattr(self, "cleaned_data", {}).items() if name not in self.errors}
        return {
            "actor": (data.get("actor") or "").strip(),
            "action": (data.get("action") or "").strip(),
            "workload_class_slug": (data.get("workload_class") or "").strip(),
            "start": _as_utc(data.get("start")),
            "end": _as_utc(data.get("end")),
        }


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    # The inputs say UTC; the form parsed them in the server's zone (UTC too, but say it once here).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
