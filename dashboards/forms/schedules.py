"""The schedules screen's class and time zone."""

from django import forms

from workloads.validation import validate_timezone


class ScheduleForm(forms.Form):
    workload_class = forms.ChoiceField(label="Class", required=False)
    tz = forms.CharField(label="Time zone", required=False, max_length=64)

    def __init__(self, *args, classes: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workload_class"].choices = classes
        self.fields["tz"].widget.attrs.update({"list": "time-zones", "placeholder": "UTC", "autocomplete": "off"})

    def clean_tz(self) -> str:
        value = (self.cleaned_data.get("tz") or "").strip() or "UTC"
        validate_timezone(value)
        return value

    def choice(self) -> tuple[str, str]:
        """(class slug or "", time zone): invalid values fall back to the first class and UTC."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return data.get("workload_class") or "", data.get("tz") or "UTC"
