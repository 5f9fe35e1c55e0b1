"""What a user chooses for themselves on every screen: the clock times are shown in."""

from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from controlplane.roles import Role
from dashboards.rendering import role_required
from workloads.errors import ApplicationError
from workloads.services.users import user_time_display_set


@require_POST
@role_required(Role.VIEWER)
def time_display(request):
    """The top bar's UTC / Local switch: keep the choice with the user, then show the same page."""
    try:
        user_time_display_set(actor=request.user, user=request.user, time_display=request.POST.get("time_display", ""))
    except ApplicationError as error:
        return HttpResponseBadRequest(error.message)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = "dashboards:overview"
    return redirect(back)
