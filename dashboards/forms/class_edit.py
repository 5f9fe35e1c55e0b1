"""The class edit form (admins): the fields people change day to day, grouped as the form shows
them, its cloud resource names, and its SLO and schedule-policy rows. They parse and check input
as the API's serializers do; dashboards/class_edit_views.py saves through the service."""

from django import forms
from django.db import models
from django.forms.models import inlineformset_factory

from workloads.models import SchedulePolicy, Slo, WorkloadClass

# Grouped as the form shows them; every name is a WorkloadClass field the API's PATCH accepts.
SECTIONS = (
    ("About", ("name", "owner_team", "tier", "description", "runbook_url")),
    ("Scaling", ("min_instances", "max_instances", "throughput_per_instance", "drain_target_seconds")),
    ("Delivery", ("timeout_tier", "timeout_seconds", "max_concurrency", "max_delivery_attempts", "replay_limit")),
    ("Cost", ("cost_rates", "vcpu_per_instance", "memory_gib_per_instance")),
    # PATCH accepts these, so the form does too; the template says a change re-provisions.
    (
        "Cloud resources",
        ("topic", "subscription", "dead_letter_topic", "dead_letter_subscription", "completion_topic", "worker_pool"),
    ),
)
EDITABLE = tuple(name for _title, names in SECTIONS for name in names)
# The writable fields of the API's SloSerializer and SchedulePolicySerializer (workloads/api/serializers.py),
# spelled again as dashboards may not import the API; tests/dashboards/test_class_edit_screen.py compares them.
SLO_FIELDS = ("kind", "percentile", "threshold_seconds", "target_percent", "window_days", "min_traffic", "runbook_url")
SCHEDULE_FIELDS = (
    "name",
    "kind",
    "days_of_week",
    "start_time",
    "end_time",
    "timezone",
    "min_instances",
    "max_instances",
    "priority",
    "enabled",
)


def _url_fields_assume_https(db_field, **kwargs):
    """A runbook link typed without its scheme becomes https://..., Django 6's default (Django 5
    assumes http:// and warns); the API's serializers refuse it instead."""
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


DAYS = [(0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun")]


class ClassEditForm(forms.ModelForm):
    """Parses and checks the fields (the model's validators, as the API's serializer does); the
    save goes through the service, never ModelForm.save()."""

    class Meta:
        model = WorkloadClass
        fields = EDITABLE
        formfield_callback = _url_fields_assume_https
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def sections(self):
        return [(title, [self[name] for name in names]) for title, names in SECTIONS]


class SchedulePolicyForm(forms.ModelForm):
    # Checkboxes rather than the JSON text a JSONField gets by default; the model's validator still runs.
    days_of_week = forms.TypedMultipleChoiceField(
        choices=DAYS, coerce=int, widget=forms.CheckboxSelectMultiple, label="Days"
    )

    class Meta:
        model = SchedulePolicy
        fields = SCHEDULE_FIELDS
        widgets = {"start_time": forms.TimeInput(format="%H:%M"), "end_time": forms.TimeInput(format="%H:%M")}


# One blank row each to add; a row's Delete box removes it (the service deletes what the list omits).
SloFormSet = inlineformset_factory(
    WorkloadClass,
    Slo,
    fields=SLO_FIELDS,
    formfield_callback=_url_fields_assume_https,
    extra=1,
    can_delete=True,
)
ScheduleFormSet = inlineformset_factory(
    WorkloadClass, SchedulePolicy, form=SchedulePolicyForm, fields=SCHEDULE_FIELDS, extra=1, can_delete=True
)
