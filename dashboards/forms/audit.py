"""The audit log's filters."""

from django import forms

from dashboards.forms.datetimes import UtcDateTimeField


class AuditFilterForm(forms.Form):
    """Filters of the audit log. Times are UTC; invalid values are reported next to the field."""

    actor = forms.CharField(label="Actor", required=False, max_length=150)
    action = forms.CharField(label="Action", required=False, max_length=64, help_text="Exact, or a prefix.")
    workload_class = forms.CharField(label="Class", required=False, max_length=48)
    start = UtcDateTimeField(label="From (UTC)", required=False)
    end = UtcDateTimeField(label="To (UTC)", required=False)

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
            "start": data.get("start"),
            "end": data.get("end"),
        }
