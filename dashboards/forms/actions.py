"""The action list's filters."""

from django import forms

from workloads.models import ActionKind, ActionState


class ActionFilterForm(forms.Form):
    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "All kinds"), *ActionKind.choices])
    state = forms.ChoiceField(label="State", required=False, choices=[("", "All states"), *ActionState.choices])
    workload_class = forms.ChoiceField(label="Class", required=False)

    def __init__(self, *args, classes: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workload_class"].choices = [("", "All classes"), *((slug, slug) for slug in classes)]

    def filters(self) -> dict[str, str]:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "kind": data.get("kind") or "",
            "state": data.get("state") or "",
            "workload_class_slug": data.get("workload_class") or "",
        }
