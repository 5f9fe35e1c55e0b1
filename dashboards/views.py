from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from controlplane.roles import Role, has_role
from workloads.models import WorkloadClass


def _require_role(request, role: Role) -> None:
    if not has_role(request.user, role):
        raise PermissionDenied(f"This page needs the {role.name.lower()} role.")


@login_required
def overview(request):
    _require_role(request, Role.VIEWER)
    classes = WorkloadClass.objects.select_related("cost_rates").order_by("slug")
    return render(request, "dashboards/overview.html", {"classes": classes})
