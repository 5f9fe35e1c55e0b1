"""Deleting a class from its page (admins): a confirmation that names every resource and what
becomes of it, the shared ones (never deleted) and the dead letters that would be lost; the same
service as DELETE /api/v1/classes/<slug>/ (workloads/services/class_deletion.py), so it is audited
and refused alike."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from controlplane.roles import Role
from dashboards.forms.class_delete import ClassDeleteForm
from dashboards.rendering import role_required
from workloads.errors import ApplicationError
from workloads.models import WorkloadClass
from workloads.services import class_deletion


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
