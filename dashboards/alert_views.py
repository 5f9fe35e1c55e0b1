"""Alerts in the browser: incidents grouped per SLO (acknowledge, delivery log), silences (with a
preview of what they would silence now), notification channels (create, send a test) and routes,
and the demo receiver. The services are the REST API's; every change is audited there."""

import json
from datetime import timedelta

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from controlplane.roles import Role, environment_role
from dashboards.forms.alerts import AcknowledgeForm, ChannelForm, RouteForm, SilenceForm
from dashboards.rendering import role_required, selected_environment
from workloads.errors import ApplicationError
from workloads.models import NotificationChannel, NotificationRoute, Silence, SloIncident
from workloads.notifications.runbooks import incident_runbook_url
from workloads.providers.base import DEAD_LETTER_RETENTION_SECONDS
from workloads.selectors import notifications as selectors
from workloads.services import alert_incidents as incident_services
from workloads.services import notifications as services

RESOLVED_SHOWN = 20


@require_GET
@role_required(Role.VIEWER, narrowed=True)
def incidents(request):
    now = timezone.now()
    environment = selected_environment(request)  # the switcher: its classes' incidents only
    open_incidents = list(selectors.incident_queryset(state="open", environment=environment))
    resolved = list(selectors.incident_queryset(state="resolved", environment=environment)[:RESOLVED_SHOWN])
    for incident in [*open_incidents, *resolved]:
        incident.state = selectors.incident_state(incident)
        incident.runbook = incident_runbook_url(incident)
        # The button follows the role in the incident's class's environment, as its view does.
        subject = incident.subject_class
        where = subject.environment_id if subject is not None else None
        incident.can_acknowledge = environment_role(request.user, where) >= Role.OPERATOR
    return render(
        request,
        "dashboards/alerts.html",
        {
            "open_incidents": open_incidents,
            "resolved_incidents": resolved,
            "silences": selectors.active_silences(now=now),
            "ack_form": AcknowledgeForm(),
            "retention_seconds": DEAD_LETTER_RETENTION_SECONDS,
            "now": now,
            "tab": "incidents",
        },
    )


def incident_environment(request):
    """The environment of the incident in the URL's class (its SLO's): acknowledging needs the role
    there (an unknown incident: the user's own role, then the view answers 404)."""
    incident = (
        SloIncident.objects.select_related("slo__workload_class__environment", "workload_class__environment")
        .filter(pk=request.resolver_match.kwargs["pk"])
        .first()
    )
    subject = incident.subject_class if incident is not None else None
    return subject.environment if subject is not None else None


@require_POST
@role_required(Role.OPERATOR, environment=incident_environment)
def incident_acknowledge(request, pk: int):
    incident = get_object_or_404(SloIncident, pk=pk)
    form = AcknowledgeForm(request.POST)
    if form.is_valid():
        try:
            incident_services.incident_acknowledge(
                actor=request.user, incident=incident, note=form.cleaned_data["note"], now=timezone.now()
            )
            messages.success(request, f"Incident {incident.key} acknowledged: no further updates will notify.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
    return redirect("dashboards:alert-incidents")


@require_http_methods(["GET", "POST"])
@role_required(Role.VIEWER, post=Role.OPERATOR)
def silences(request):
    now = timezone.now()
    form = SilenceForm(request.POST or None)
    preview = None
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            matchers = {name: data.get(name, "") for name in incident_services.MATCHER_FIELDS}
            if "preview" in request.POST:
                preview = incident_services.silence_preview(matchers=matchers, now=now)
            else:
                try:
                    silence = incident_services.silence_create(
                        actor=request.user,
                        matchers=matchers,
                        reason=data.get("reason", ""),
                        expires_at=now + timedelta(minutes=data["expires_in_minutes"]),
                        now=now,
                    )
                except ApplicationError as exc:
                    form.add_error(None, exc.message)
                else:
                    messages.success(request, f"Silence #{silence.pk} is active until {silence.expires_at:%H:%M} UTC.")
                    return redirect("dashboards:alert-silences")
    return render(
        request,
        "dashboards/alert_silences.html",
        {
            "form": form,
            "preview": preview,
            "active": selectors.active_silences(now=now),
            "past": Silence.objects.exclude(pk__in=selectors.active_silences(now=now).values("pk"))[:20],
            "now": now,
            "tab": "silences",
        },
    )


@require_POST
@role_required(Role.OPERATOR)
def silence_end(request, pk: int):
    try:
        incident_services.silence_end(actor=request.user, silence=get_object_or_404(Silence, pk=pk), now=timezone.now())
        messages.success(request, f"Silence #{pk} ended.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("dashboards:alert-silences")


@require_http_methods(["GET", "POST"])
@role_required(Role.VIEWER, post=Role.ADMIN)
def channels(request):
    form = ChannelForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                channel = services.channel_create(
                    actor=request.user,
                    name=form.cleaned_data["name"],
                    kind=form.cleaned_data["kind"],
                    config=form.channel_config(),
                    secret=form.cleaned_data.get("secret", ""),
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Channel “{channel.name}” created. Send it a test to check it works.")
                return redirect("dashboards:alert-channels")
    now = timezone.now()
    rows = list(NotificationChannel.objects.order_by("name"))
    for channel in rows:
        channel.failing = selectors.channel_is_failing(channel, now=now)
        channel.last_attempt = channel.notifications.order_by("-created_at").prefetch_related("deliveries").first()
    return render(
        request,
        "dashboards/alert_channels.html",
        {"form": form, "channels": rows, "now": now, "tab": "channels"},
    )


@require_POST
@role_required(Role.OPERATOR)
def channel_test(request, pk: int):
    channel = get_object_or_404(NotificationChannel, pk=pk)
    delivery = services.channel_test_send(actor=request.user, channel=channel, now=timezone.now())
    if delivery.ok:
        messages.success(
            request, f"Test sent to “{channel.name}”: the receiver answered {delivery.status_code or 'OK'}."
        )
    else:
        messages.error(request, f"Test to “{channel.name}” failed: {delivery.error}")
    return redirect("dashboards:alert-channels")


@require_http_methods(["GET", "POST"])
@role_required(Role.VIEWER, post=Role.ADMIN)
def routes(request):
    form = RouteForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            data = dict(form.cleaned_data)
            chosen = list(data.pop("channels"))
            try:
                route = services.route_save(actor=request.user, route=None, data=data, channels=chosen)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Route “{route.name}” created.")
                return redirect("dashboards:alert-routes")
    return render(
        request,
        "dashboards/alert_routes.html",
        {
            "form": form,
            "routes": NotificationRoute.objects.prefetch_related("channels").order_by("is_default", "order", "id"),
            "tab": "routes",
        },
    )


@require_GET
@role_required(Role.VIEWER)
def demo_receiver(request):
    received = list(selectors.demo_received())
    for delivery in received:
        delivery.pretty_body = json.dumps(delivery.request_body, indent=2, sort_keys=True)
    return render(request, "dashboards/alert_demo_receiver.html", {"received": received, "tab": "demo"})
