"""Recording a deployment from a class page (the same service as the API's POST), for teams whose
CI does not call the API yet. A plain form post: the page is redirected to with a message."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.roles import Role
from dashboards.rendering import role_required
from workloads.models import DeploymentSource, WorkloadClass
from workloads.services.deployments import deployment_record


@require_POST
@role_required(Role.OPERATOR)
def class_deployment_record(request, slug: str):
    workload_class = WorkloadClass.objects.filter(slug=slug).first()
    if workload_class is None:
        raise Http404(f"No workload class {slug!r}.")
    try:
        deployment = deployment_record(
            workload_class=workload_class,
            actor=request.user,
            source=DeploymentSource.UI,
            now=timezone.now(),
            version=request.POST.get("version", ""),
            commit=request.POST.get("commit", ""),
            link=request.POST.get("link", ""),
        )
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
        messages.error(request, f"The deployment was not recorded. {problems}")
    else:
        messages.success(request, f"Deployment {deployment.label} recorded: it marks the charts from now on.")
    return redirect(f"{redirect('dashboards:class-detail', slug).url}#deployments-title")
