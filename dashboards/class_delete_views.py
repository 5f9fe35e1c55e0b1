"""Deleting a class from its page (admins): a confirmation that names every resource and what
becomes of it, the shared ones (never deleted) and the dead letters that would be lost; the same
service as DELETE /api/v1/classes/<slug>/ (workloads/services/class_deletion.py), so it is audited
and refused alike."""

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from controlplane.roles import Role
from dashboards.rendering import role_required
from workloads.errors import ApplicationError
from workloads.models import WorkloadClass
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


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def class_delete(request, slug: str):
    workload_class = WorkloadClass.objects.filter(slug=slug).first()
    if workload_class is None:
        raise Http404("No such class.")
    form = ClassDeleteForm(request.POST or None, slug=slug, auto_id="delete_%s")
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                action = class_deletion.workload_class_delete(
                    actor=request.user,
                    workload_class=workload_class,
                    resources=form.cleaned_data["resources"],
                    force=form.cleaned_data["force"],
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                if action is None:
                    messages.success(request, f"{slug} deleted; its resources were kept.")
                    return redirect("dashboards:overview")
                messages.success(request, f"{slug} deleted; its resources are being deleted (action #{action.pk}).")
                return redirect("dashboards:action-detail", action_id=action.pk)
        status = 400
    preview = class_deletion.workload_class_deletion_preview(workload_class)
    return render(
        request,
        "dashboards/class_delete.html",
        {"wc": workload_class, "preview": preview, "form": form},
        status=status,
    )
