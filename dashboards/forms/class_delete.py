"""Deleting a class: what becomes of its resources, and its slug typed to confirm."""

from django import forms

from workloads.services import class_deletion


class ClassDeleteForm(forms.Form):
    resources = forms.ChoiceField(
        choices=[
            (class_deletion.KEEP, "Keep them: delete the class only"),
            (class_deletion.DELETE, "Delete them with the class"),
        ],
        initial=class_deletion.KEEP,
        widget=forms.RadioSelect,
    )
    force = forms.BooleanField(required=False)
    confirm_slug = forms.CharField(label="Type the class's slug to confirm", max_length=100)

    def __init__(self, *args, slug: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.slug = slug

    def clean_confirm_slug(self):
        typed = self.cleaned_data["confirm_slug"].strip()
        if typed != self.slug:
            raise forms.ValidationError(f"Type {self.slug} to confirm.")
        return typed
