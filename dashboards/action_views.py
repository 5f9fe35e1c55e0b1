"""Actions: the list, one action's progress and steps, and its cancel button."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from controlplane.roles import Role
from dashboards.forms.actions import ActionFilterForm
from dashboards.rendering import render_page as _render
from dashboards.rendering import role_required, selected_environment, with_toasts
from dashboards.rendering import wants_fragment as _wants_fragment
from workloads.errors import ApplicationError
from workloads.models import ActionKind
from workloads.selectors import actions as action_selectors
from workloads.selectors import fleet
from workloads.selectors.replays import attach_replay_outcomes, outcome_still_watched, replay_outcome
from workloads.services.actions import action_cancel

ACTIONS_PAGE_SIZE = 50
STEPS_PAGE_SIZE = 50


@require_GET
@role_required(Role.VIEWER, narrowed=True)
def action_list(request):
    environment = selected_environment(request)  # the switcher: its classes' actions only
    form = ActionFilterForm(request.GET or None, classes=[wc.slug for wc in fleet.classes_for_choice(environment)])
    filters = form.filters()
    rows = action_selectors.action_list(**filters, environment=environment)
    page = Paginator(rows, ACTIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)  # the rows the outcomes are attached to are the ones shown
    attach_replay_outcomes(page.object_list)
    context = {
        "form": form,
        "page": page,
        "filtered": any(filters.values()),
        # The list refreshes itself only while something on it can still move.
        "any_running": any(not action.is_final for action in page),
    }
    return _render(request, "dashboards/actions.html", "action-rows", context)


def _action_or_404(action_id: int):
    action = action_selectors.action_for_detail(action_id)
    if action is None:
        raise Http404(f"No action #{action_id}.")
    return action


def _steps_context(request, action) -> dict:
    failed_first = request.GET.get("failed_first") == "1"
    steps = action_selectors.action_steps(action=action, failed_first=failed_first)
    return {
        "steps_page": Paginator(steps, STEPS_PAGE_SIZE).get_page(request.GET.get("page")),
        "failed_first": failed_first,
    }


@require_GET
@role_required(Role.VIEWER)
def action_detail(request, action_id: int):
    """The action with its progress and its steps; htmx asks this URL for the steps table only
    (pagination, "failed first", and a refresh after each progress poll)."""
    action = _action_or_404(action_id)
    context = {"action": action, **_steps_context(request, action)}
    return _render(request, "dashboards/action_detail.html", "action-steps", context)


def _progress_response(request, action) -> HttpResponse:
    """The progress panel. While the action can still move, the panel polls itself every 2 s;
    once it has ended, the answer carries htmx's "stop polling" status (286) with the final
    panel, so the last poll both shows the outcome and ends the polling."""
    html = render_to_string("dashboards/action_detail.html#action-progress", {"action": action}, request=request)
    # A finished replay is still watched while its published messages have no outcome yet.
    watching = outcome_still_watched(action, replay_outcome(action), now=timezone.now())
    response = HttpResponseStopPolling(html) if action.is_final and not watching else HttpResponse(html)
    # The steps table listens for this to refresh its own rows.
    trigger_client_event(response, "action-progressed", {"id": action.pk, "state": action.state})
    if action.kind == ActionKind.REPLAY and action.is_final and request.GET.get("ended") != "1":
        # The poll that sees the replay end (a panel still watching its messages asks with
        # ended=1): the dead-letter list under the panel shows the rows' new status.
        trigger_client_event(response, "dead-letters-changed", {"id": action.pk})
    patch_vary_headers(response, ("HX-Request",))
    return response


@require_GET
@role_required(Role.VIEWER)
def action_progress(request, action_id: int):
    action = _action_or_404(action_id)
    if not _wants_fragment(request):
        return redirect("dashboards:action-detail", action_id=action.pk)
    return _progress_response(request, action)


@require_POST
@role_required(Role.OPERATOR)
def action_cancel_view(request, action_id: int):
    action = _action_or_404(action_id)
    try:
        action = action_cancel(action=action, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        action.refresh_from_db()
    else:
        if action.is_final:
            messages.success(request, f"Action #{action.pk} was cancelled before it started.")
        else:
            messages.success(request, f"Cancel requested: action #{action.pk} stops after its current step.")
    if request.htmx:
        response = _progress_response(request, action)
        return with_toasts(request, response)
    return redirect("dashboards:action-detail", action_id=action.pk)
