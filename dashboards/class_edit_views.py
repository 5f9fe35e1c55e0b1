"""Editing a class in the product's own form (admins): the fields people change day to day, saved
through workloads.services.classes.workload_class_update, the service behind PATCH
/api/v1/classes/<slug>/, so the change is validated (the model's full_clean), audited as
workload_class.update and provisioned alike. Errors show beside their field. The Django admin
stays for admins who need what this form leaves out (resource names, SLOs, schedules)."""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from controlplane.roles import Role
from dashboards.rendering import role_required
from workloads.errors import ApplicationError
from workloads.models import WorkloadClass
from workloads.services.classes import workload_class_update

# Grouped as the form shows them; every name is a WorkloadClass field the API's PATCH accepts.
SECTIONS = (
    ("About", ("name", "owner_team", "tier", "description", "runbook_url")),
    ("Scaling", ("min_instances", "max_instances", "throughput_per_instance", "drain_target_seconds")),
    ("Delivery", ("timeout_tier", "timeout_seconds", "max_concurrency", "max_delivery_attempts", "replay_limit")),
    ("Cost", ("cost_rates", "vcpu_per_instance", "memory_gib_per_instance")),
)
EDITABLE = tuple(name for _title, names in SECTIONS for name in names)


class ClassEditForm(forms.ModelForm):
    """Parses and checks the fields (the model's validators, as the API's serializer does); the
    save goes through the service, never ModelForm.save()."""

    class Meta:
        model = WorkloadClass
        fields = EDITABLE
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def sections(self):
        return [(title, [self[name] for name in names]) for title, names in SECTIONS]


def _add_service_errors(form: ClassEditForm, error: ValidationError) -> None:
    """The service's ValidationError beside the field it names, or at the top of the form."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        target = field if field in form.fields else None
        for item in errors:
            for message in item.messages:
                form.add_error(target, message if target else f"{field.replace('_', ' ')}: {message}")


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)  # the API's write role for classes
def class_edit(request, slug: str):
    workload_class = WorkloadClass.objects.select_related("cost_rates").filter(slug=slug).first()
    if workload_class is None:
        raise Http404("No such class.")
    # The form validates a copy: the service reads the class afresh and applies only the changes.
    form = ClassEditForm(request.POST or None, instance=WorkloadClass.objects.get(pk=workload_class.pk))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            changed = {name: form.cleaned_data[name] for name in form.changed_data}
            if not changed:
                messages.info(request, "Nothing changed.")
                return redirect("dashboards:class-detail", slug=slug)
            try:
                updated = workload_class_update(actor=request.user, workload_class=workload_class, fields=changed)
            except ValidationError as error:
                _add_service_errors(form, error)
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                names = ", ".join(form[name].label.lower() for name in form.changed_data)
                note = (
                    f" Its cloud resources are being updated (action #{updated.provisioning_action.pk})."
                    if updated.provisioning_action is not None
                    else ""
                )
                messages.success(request, f"{workload_class.slug} saved: {names}.{note}")
                return redirect("dashboards:class-detail", slug=slug)
        status = 400
    return render(request, "dashboards/class_edit.html", {"wc": workload_class, "form": form}, status=status)
