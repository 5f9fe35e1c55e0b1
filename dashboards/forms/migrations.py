"""The migrations screen's form for a new plan: the class to move and the Worker Pool class that
takes its work over, with the canary and ramp shares."""

from django import forms

from workloads.models import WorkloadClass
from workloads.runtimes import Runtime


class PlanForm(forms.Form):
    source = forms.ModelChoiceField(
        queryset=WorkloadClass.objects.exclude(runtime=Runtime.WORKER_POOL).order_by("slug"),
        to_field_name="slug",
        help_text="The class to move, on its current runtime.",
    )
    target = forms.ModelChoiceField(
        queryset=WorkloadClass.objects.filter(runtime=Runtime.WORKER_POOL).order_by("slug"),
        to_field_name="slug",
        help_text="The Worker Pool class that takes its work over.",
    )
    name = forms.CharField(max_length=120, required=False)
    canary_percent = forms.IntegerField(min_value=1, max_value=99, initial=20)
    ramp_percent = forms.IntegerField(min_value=1, max_value=99, initial=50)
