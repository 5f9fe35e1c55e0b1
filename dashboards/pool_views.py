"""A class's worker pool and subscription on its detail page: pause, resume and extend (the same
holds and restore rule as incident mode), the scaling controller's state with take-over and on/off,
and seek and snapshots of the subscription. The panels re-render in place for htmx and the page
is redirected to for a plain form post."""

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from controlplane.roles import Role
from dashboards.forms.expiry import ExtendForm
from dashboards.forms.pool import OverrideForm, PauseForm, SeekForm, SnapshotForm
from dashboards.rendering import add_service_errors, role_required, with_toasts
from workloads.errors import ApplicationError
from workloads.models import DeadLetter, DeadLetterStatus, PoolHold, WorkloadClass
from workloads.providers.base import ProviderError
from workloads.selectors.fleet import hold_summary
from workloads.selectors.pauses import pause_preview
from workloads.selectors.scaling import pool_control_of
from workloads.selectors.subscriptions import class_snapshots, snapshot_short_name
from workloads.services import pauses
from workloads.services import scaling as scaling_services
from workloads.services import subscriptions as subscription_services
from workloads.services.subscriptions import seek_effect


def _class_or_404(slug: str) -> WorkloadClass:
    workload_class = WorkloadClass.objects.prefetch_related("schedules").filter(slug=slug).first()
    if workload_class is None:
        raise Http404(f"No workload class {slug!r}.")
    return workload_class


def _default_minutes() -> int:
    return settings.INCIDENT_DEFAULT_EXPIRY_MINUTES


def pool_context(
    workload_class: WorkloadClass, *, pause_form=None, extend_form=None, override_form=None, pause_review=None
) -> dict:
    """What the pool panel shows: the pause in force (or the last one), the action moving the
    pool, and the controller's view of it."""
    hold = (
        PoolHold.objects.filter(workload_class=workload_class)
        .select_related("incident", "pause_action", "restore_action")
        .order_by("-created_at", "-id")
        .first()
    )
    moving = None
    if hold is not None:
        for action in (hold.restore_action, hold.pause_action):
            if action is not None and not action.is_final:
                moving = action
                break
    retention = workload_class.message_retention_seconds
    return {
        "workload_class": workload_class,
        "hold": hold,
        "paused": hold is not None and hold.is_open,
        "hold_summary": hold_summary(hold) if hold is not None and hold.is_open else "",
        "moving": moving,
        "control": pool_control_of(workload_class),
        "pause_form": pause_form
        or PauseForm(retention_seconds=retention, default_minutes=_default_minutes(), auto_id="pause_%s"),
        "extend_form": extend_form or ExtendForm(default_minutes=_default_minutes(), auto_id="extend_%s"),
        "override_form": override_form
        or OverrideForm(
            max_instances=workload_class.max_instances, default_minutes=_default_minutes(), auto_id="override_%s"
        ),
        "pause_review": pause_review,
    }


def subscription_context(workload_class: WorkloadClass, *, seek_form=None, snapshot_form=None, **extra) -> dict:
    try:
        snapshots, snapshots_error = class_snapshots(workload_class), ""
    except ProviderError as exc:  # the page still shows; the panel says why the list is missing
        snapshots, snapshots_error = [], exc.message
    return {
        "workload_class": workload_class,
        "seek_form": seek_form or SeekForm(auto_id="seek_%s"),
        "snapshot_form": snapshot_form or SnapshotForm(auto_id="snapshot_%s"),
        "snapshots": [
            {"name": snapshot_short_name(info), "resource": info.name, "expire_time": info.expire_time}
            for info in snapshots
        ],
        "snapshots_error": snapshots_error,
        **extra,
    }


def class_operations_context(workload_class: WorkloadClass) -> dict:
    """Everything the class page adds for on-call: the pool, the subscription, open dead letters."""
    return {
        "pool": pool_context(workload_class),
        "subscription": subscription_context(workload_class),
        "open_dead_letters": DeadLetter.objects.filter(
            workload_class=workload_class, status__in=(DeadLetterStatus.NEW, DeadLetterStatus.HELD)
        ).count(),
    }


def _pool_response(request, workload_class: WorkloadClass, *, status: int = 200, **forms):
    context = {"pool": pool_context(workload_class, **forms)}
    if not request.htmx:
        if forms.get("pause_review") is not None or status != 200:
            # Without JavaScript the confirmation (or the form's errors) is a page of its own.
            return render(request, "dashboards/pool_confirm.html", context, status=status)
        return redirect("dashboards:class-detail", slug=workload_class.slug)
    # htmx swaps only 2xx answers: a form with errors is still the panel to show.
    return with_toasts(request, render(request, "dashboards/partials/pool_panel.html", context))


@require_GET
@role_required(Role.VIEWER)
def class_pool(request, slug: str):
    """The pool panel alone: it polls this while a pause or a restore is under way."""
    workload_class = _class_or_404(slug)
    if not request.htmx:
        return redirect("dashboards:class-detail", slug=slug)
    return render(request, "dashboards/partials/pool_panel.html", {"pool": pool_context(workload_class)})


@require_POST
@role_required(Role.OPERATOR)
def class_pause(request, slug: str):
    workload_class = _class_or_404(slug)
    form = PauseForm(
        request.POST,
        retention_seconds=workload_class.message_retention_seconds,
        default_minutes=_default_minutes(),
        auto_id="pause_%s",
    )
    if not form.is_valid():
        return _pool_response(request, workload_class, status=400, pause_form=form)
    expires_in = timedelta(minutes=form.cleaned_data["expires_in_minutes"])
    if request.POST.get("step") != "confirm":
        # Resume and "controller off" ask first; so does a pause, with what it holds back.
        review = pause_preview(workload_class, paused_for=expires_in)
        return _pool_response(request, workload_class, pause_form=form, pause_review=review)
    try:
        result = pauses.pool_pause(
            workload_class=workload_class,
            actor=request.user,
            reason=form.cleaned_data["reason"],
            expires_in=expires_in,
        )
    except ValidationError as exc:
        add_service_errors(form, exc)
        return _pool_response(request, workload_class, status=400, pause_form=form)
    if result.changed:
        messages.success(request, f"Pausing {workload_class.slug}: its pool goes to 0 instances.")
    else:
        messages.info(request, f"{workload_class.slug} is already paused; nothing new was done.")
    for warning in result.warnings:
        messages.warning(request, warning)
    return _pool_response(request, workload_class)


@require_POST
@role_required(Role.OPERATOR)
def class_resume(request, slug: str):
    workload_class = _class_or_404(slug)
    try:
        result = pauses.pool_resume(
            workload_class=workload_class, actor=request.user, reason=request.POST.get("reason", "")
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        if result.changed:
            messages.success(request, f"Resuming {workload_class.slug}: its pool is being restored.")
        else:
            messages.info(request, f"{workload_class.slug} is not paused; nothing new was done.")
    return _pool_response(request, workload_class)


@require_POST
@role_required(Role.OPERATOR)
def class_override(request, slug: str):
    """Hold the pool at a count for a set time (a pause at a count): the API's
    `POST classes/<slug>/pause` with `instances`."""
    workload_class = _class_or_404(slug)
    form = OverrideForm(
        request.POST,
        max_instances=workload_class.max_instances,
        default_minutes=_default_minutes(),
        auto_id="override_%s",
    )
    if not form.is_valid():
        return _pool_response(request, workload_class, status=400, override_form=form)
    try:
        result = pauses.pool_pause(
            workload_class=workload_class,
            actor=request.user,
            reason=form.cleaned_data["reason"],
            expires_in=timedelta(minutes=form.cleaned_data["expires_in_minutes"]),
            instances=form.cleaned_data["instances"],
        )
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return _pool_response(request, workload_class, status=400, override_form=form)
    count = form.cleaned_data["instances"]
    if result.changed:
        messages.success(request, f"Holding {workload_class.slug} at {count} instance{'s' if count != 1 else ''}.")
    else:
        messages.info(request, f"{workload_class.slug} is already held; nothing new was done.")
    return _pool_response(request, workload_class)


@require_POST
@role_required(Role.OPERATOR)
def class_pause_extend(request, slug: str):
    workload_class = _class_or_404(slug)
    form = ExtendForm(request.POST, default_minutes=_default_minutes(), auto_id="extend_%s")
    if not form.is_valid():
        return _pool_response(request, workload_class, status=400, extend_form=form)
    try:
        result = pauses.pool_hold_extend(
            workload_class=workload_class,
            actor=request.user,
            expires_in=timedelta(minutes=form.cleaned_data["expires_in_minutes"]),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    except ValidationError as exc:
        add_service_errors(form, exc)
        return _pool_response(request, workload_class, status=400, extend_form=form)
    else:
        messages.success(request, f"The pause of {workload_class.slug} now ends at {result.hold.expires_at:%H:%M} UTC.")
        for warning in result.warnings:
            messages.warning(request, warning)
    return _pool_response(request, workload_class)


@require_POST
@role_required(Role.OPERATOR)
def class_take_over(request, slug: str):
    workload_class = _class_or_404(slug)
    control = scaling_services.pool_control_take_over(workload_class=workload_class, actor=request.user)
    messages.success(
        request,
        f"The controller owns {workload_class.slug}’s pool again, starting from {control.last_set_count} instances.",
    )
    return _pool_response(request, workload_class)


@require_POST
@role_required(Role.OPERATOR)
def class_controller(request, slug: str):
    workload_class = _class_or_404(slug)
    enabled = request.POST.get("controller_enabled") == "1"
    scaling_services.pool_control_update(workload_class=workload_class, actor=request.user, controller_enabled=enabled)
    messages.success(
        request,
        f"The scaling controller is {'on' if enabled else 'off'} for {workload_class.slug}."
        + ("" if enabled else " Nothing changes the pool's count until it is turned on again."),
    )
    return _pool_response(request, workload_class)


# --- Seek and snapshots -------------------------------------------------------------------------------
def _subscription_response(request, workload_class: WorkloadClass, *, status: int = 200, **context):
    if not request.htmx:
        action = context.get("action")
        if action is not None and status == 200:
            return redirect("dashboards:action-detail", action_id=action.pk)
        return render(
            request,
            "dashboards/subscription_confirm.html",
            {"subscription": subscription_context(workload_class, **context)},
            status=status,
        )
    response = render(
        request,
        "dashboards/partials/subscription_panel.html",
        {"subscription": subscription_context(workload_class, **context)},
    )
    return with_toasts(request, response)


@require_POST
@role_required(Role.OPERATOR)
def class_seek(request, slug: str):
    """Seek the whole subscription. The first submission shows what it will do (the service's
    effect text) with a confirm box; only a submission with the box ticked seeks."""
    workload_class = _class_or_404(slug)
    form = SeekForm(request.POST, auto_id="seek_%s")
    if not form.is_valid():
        return _subscription_response(request, workload_class, status=400, seek_form=form)
    data = form.cleaned_data
    target = {"to_time": data.get("to_time"), "snapshot": (data.get("snapshot") or "").strip()}
    reviewed = f"{target['to_time'].isoformat() if target['to_time'] else ''}|{target['snapshot']}"
    # The box confirms the effect that was shown: a target changed since then is shown again.
    confirmed = bool(data.get("confirm")) and request.POST.get("reviewed") == reviewed
    try:
        action = subscription_services.subscription_seek_request(
            actor=request.user,
            workload_class=workload_class,
            confirm=confirmed,
            accept_rerun=confirmed and bool(data.get("accept_rerun")),
            reason=data.get("reason") or "",
            **target,
        )
    except ApplicationError as exc:
        if exc.code in ("confirmation_required", "rerun_acknowledgement_required"):
            effect = exc.extra.get("effect") or seek_effect(workload_class=workload_class, **target)
            impact = exc.extra.get("impact") or {}
            if exc.code == "rerun_acknowledgement_required":
                form.add_error(None, exc.message)
            # Asked again with the boxes: ticking them is the confirmation.
            return _subscription_response(
                request,
                workload_class,
                status=400 if exc.code == "rerun_acknowledgement_required" else 200,
                seek_form=form,
                seek_effect=effect,
                seek_needs_confirm=True,
                seek_needs_rerun=bool(impact.get("unprotected")),
                seek_rerun=impact.get("completed_rerun", 0),
                seek_reviewed=reviewed,
            )
        form.add_error(None, exc.message)
        return _subscription_response(request, workload_class, status=400, seek_form=form)
    messages.success(request, f"Seek #{action.pk} requested.")
    return _subscription_response(request, workload_class, action=action)


@require_POST
@role_required(Role.OPERATOR)
def class_snapshot(request, slug: str):
    workload_class = _class_or_404(slug)
    form = SnapshotForm(request.POST, auto_id="snapshot_%s")
    if not form.is_valid():
        return _subscription_response(request, workload_class, status=400, snapshot_form=form)
    try:
        action = subscription_services.snapshot_create_request(
            actor=request.user,
            workload_class=workload_class,
            name=(form.cleaned_data.get("name") or "").strip(),
            reason=form.cleaned_data.get("reason") or "",
        )
    except ApplicationError as exc:
        form.add_error("name", exc.message)
        return _subscription_response(request, workload_class, status=400, snapshot_form=form)
    messages.success(request, f"Snapshot #{action.pk} requested: {action.parameters['name']}.")
    return _subscription_response(request, workload_class, action=action)
