"""REST API v1: incidents (one per SLO) with acknowledge and their notifications' delivery log,
silences (with a preview), notification channels (secrets write-only; send a test) and routes.

Viewers read; operators acknowledge, silence and send tests; admins change channels and routes.
"""

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from controlplane.roles import Role
from workloads.api.choices import ChoiceField
from workloads.api.serializers import StrictModelSerializer, StrictSerializer
from workloads.models import (
    AlertSeverity,
    Notification,
    NotificationChannel,
    NotificationDelivery,
    NotificationRoute,
    Silence,
    SloIncident,
    SloKind,
    Tier,
)
from workloads.notifications.runbooks import incident_runbook_url
from workloads.selectors import notifications as selectors
from workloads.selectors.environments import environment_by_slug
from workloads.services import alert_incidents as incident_services
from workloads.services import notifications as services


# --- Channels ----------------------------------------------------------------------------------------------
class NotificationChannelSerializer(StrictModelSerializer):
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="Write-only: the webhook's signing secret, the Slack incoming-webhook URL or the PagerDuty "
        "routing key. Never returned; omit it on update to keep the current one.",
    )
    secret_set = serializers.SerializerMethodField(help_text="Whether a secret is stored (it is never shown).")
    failing = serializers.SerializerMethodField(help_text="Failing for the banner threshold (15 min by default).")

    class Meta:
        model = NotificationChannel
        fields = [
            "id",
            "name",
            "kind",
            "config",
            "secret",
            "secret_set",
            "enabled",
            "failing",
            "failing_since",
            "last_error",
            "last_success_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "failing_since", "last_error", "last_success_at", "created_at", "updated_at"]

    def get_secret_set(self, channel: NotificationChannel) -> bool:
        return bool(channel.secret)

    def get_failing(self, channel: NotificationChannel) -> bool:
        return selectors.channel_is_failing(channel, now=timezone.now())

    def validate_config(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("config must be a JSON object.")
        return value

    def validate(self, attrs):
        if self.instance is not None and "kind" in attrs and attrs["kind"] != self.instance.kind:
            raise serializers.ValidationError({"kind": "The kind of a channel cannot change; create a new one."})
        return attrs


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = NotificationDelivery
        fields = ["id", "attempted_at", "ok", "status_code", "error", "duration_ms", "request_body", "response_body"]
        read_only_fields = fields


class ChannelViewSet(viewsets.ModelViewSet):
    """Where notifications go: `webhook` (signed JSON), `slack` (incoming webhook), `pagerduty`
    (Events API v2), `email` or `demo` (stored in the product). `POST .../test/` sends a test."""

    serializer_class = NotificationChannelSerializer
    queryset = NotificationChannel.objects.all()
    filterset_fields = ["kind", "enabled"]
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]

    def required_role(self, request) -> Role:
        if request.method in SAFE_METHODS:
            return Role.VIEWER
        return Role.OPERATOR if self.action == "test" else Role.ADMIN

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.channel_create(
            actor=self.request.user,
            name=data["name"],
            kind=data["kind"],
            config=data.get("config", {}),
            secret=data.get("secret", ""),
            enabled=data.get("enabled", True),
        )

    def perform_update(self, serializer):
        serializer.instance = services.channel_update(
            actor=self.request.user, channel=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.channel_delete(actor=self.request.user, channel=instance)

    @extend_schema(request=None, responses={200: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a test notification now (one attempt) and answer with the attempt."""
        delivery = services.channel_test_send(actor=request.user, channel=self.get_object(), now=timezone.now())
        return Response(DeliverySerializer(delivery).data)


# --- Routes ------------------------------------------------------------------------------------------------
class NotificationRouteSerializer(StrictModelSerializer):
    channels = serializers.PrimaryKeyRelatedField(many=True, queryset=NotificationChannel.objects.all())
    # Declared: the one-default-route check is the service's, with a message that says so.
    is_default = serializers.BooleanField(required=False, default=False)
    tier = ChoiceField(choices=Tier.choices, allow_blank=True, required=False)
    slo_kind = ChoiceField(choices=SloKind.choices, allow_blank=True, required=False)
    severity = ChoiceField(choices=AlertSeverity.choices, allow_blank=True, required=False)

    class Meta:
        model = NotificationRoute
        fields = [
            "id",
            "name",
            "order",
            "is_default",
            "owner_team",
            "tier",
            "workload_class_slug",
            "slo_kind",
            "severity",
            "channels",
            "hold_tickets_for_business_hours",
            "business_hours_timezone",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class RouteViewSet(viewsets.ModelViewSet):
    """Routes match incidents on team, tier, class, SLO kind and severity (empty = any). They are
    tried by `order`, the default route last; the first match's channels are notified."""

    serializer_class = NotificationRouteSerializer
    queryset = NotificationRoute.objects.prefetch_related("channels")
    read_role = Role.VIEWER
    write_role = Role.ADMIN
    filterset_fields = ["is_default", "severity"]
    search_fields = ["name"]
    ordering_fields = ["order"]
    ordering = ["is_default", "order", "id"]

    def _save(self, serializer, route):
        data = dict(serializer.validated_data)
        channels = data.pop("channels", None)
        if channels is None:
            channels = list(route.channels.all()) if route else []
        serializer.instance = services.route_save(actor=self.request.user, route=route, data=data, channels=channels)

    def perform_create(self, serializer):
        self._save(serializer, None)

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance):
        services.route_delete(actor=self.request.user, route=instance)


# --- Incidents ---------------------------------------------------------------------------------------------
class IncidentAlertSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rule = serializers.CharField()
    severity = serializers.CharField()
    active = serializers.BooleanField(source="is_active")
    opened_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    last_long_burn_rate = serializers.FloatField()
    last_short_burn_rate = serializers.FloatField()


class NotificationSerializer(serializers.ModelSerializer):
    channel = serializers.CharField(source="channel.name")
    channel_kind = serializers.CharField(source="channel.kind")
    deliveries = DeliverySerializer(many=True, read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id",
            "incident",
            "channel",
            "channel_kind",
            "event",
            "sequence",
            "severity",
            "state",
            "state_reason",
            "created_at",
            "next_attempt_at",
            "attempts",
            "sent_at",
            "deliveries",
        ]
        read_only_fields = fields


class SloIncidentSerializer(serializers.ModelSerializer):
    workload_class = serializers.CharField(source="subject_class.slug")
    owner_team = serializers.CharField(source="subject_class.owner_team")
    slo_kind = serializers.CharField(source="slo.kind", allow_null=True, default=None)
    dead_letter_oldest_age_seconds = serializers.FloatField(allow_null=True)
    state = serializers.SerializerMethodField()
    runbook_url = serializers.SerializerMethodField()
    alerts = IncidentAlertSerializer(many=True, read_only=True)
    notifications = NotificationSerializer(many=True, read_only=True)

    class Meta:
        model = SloIncident
        fields = [
            "id",
            "key",
            "kind",
            "workload_class",
            "owner_team",
            "slo",
            "slo_kind",
            "dead_letter_oldest_age_seconds",
            "severity",
            "state",
            "opened_at",
            "resolved_at",
            "acknowledged_at",
            "acknowledged_by_label",
            "acknowledgement_note",
            "runbook_url",
            "alerts",
            "notifications",
        ]
        read_only_fields = fields

    def get_state(self, incident: SloIncident) -> str:
        return selectors.incident_state(incident)

    def get_runbook_url(self, incident: SloIncident) -> str:
        return incident_runbook_url(incident)


class AcknowledgeInputSerializer(StrictSerializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=["open", "resolved"], description="`open` or `resolved` ones only."),
            OpenApiParameter("environment", str, description="An environment's slug: its classes' incidents only."),
        ]
    )
)
class IncidentViewSet(viewsets.ReadOnlyModelViewSet):
    """Incidents, one per SLO: the burn-rate alerts of one SLO open together are one incident with
    a stable `key` (PagerDuty's dedup_key). `kind` `dead_letter_retention`: a class's oldest
    un-mirrored dead letter nears the dead-letter subscription's retention; `pool_unhealthy`: its
    pool is judged unhealthy (neither has an SLO or alerts).
    `?state=open` for the current ones. Each carries its alerts and every notification with its
    delivery attempts."""

    serializer_class = SloIncidentSerializer
    filterset_fields = ["severity"]
    search_fields = ["key"]
    ordering_fields = ["opened_at"]
    ordering = ["-opened_at", "-id"]
    # Acknowledging checks the role in the incident's class's environment (the object check).
    class_in_request = True
    environment_lookup = ("slo__workload_class__environment", "workload_class__environment")

    def required_role(self, request) -> Role:
        return Role.VIEWER if request.method in SAFE_METHODS else Role.OPERATOR

    def get_queryset(self):
        state = self.request.query_params.get("state", "")
        if state and state not in ("open", "resolved"):
            raise ValidationError({"state": "open or resolved"})
        slug = self.request.query_params.get("environment", "")
        environment = environment_by_slug(slug)
        if slug and environment is None:
            raise ValidationError({"environment": f"Unknown environment {slug!r}."})
        return selectors.incident_queryset(state=state, environment=environment)

    @extend_schema(request=AcknowledgeInputSerializer, responses={200: SloIncidentSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """Acknowledge (operator): records who, when and the note; later severity changes notify no
        one; channels already notified hear of it (PagerDuty: `acknowledge` with the same dedup_key)."""
        params = AcknowledgeInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        incident = incident_services.incident_acknowledge(
            actor=request.user,
            incident=self.get_object(),
            note=params.validated_data.get("note", ""),
            now=timezone.now(),
        )
        return Response(self.get_serializer(selectors.incident_queryset().get(pk=incident.pk)).data)


# --- Silences ----------------------------------------------------------------------------------------------
class SilenceSerializer(StrictModelSerializer):
    tier = ChoiceField(choices=Tier.choices, allow_blank=True, required=False)
    slo_kind = ChoiceField(choices=SloKind.choices, allow_blank=True, required=False)
    severity = ChoiceField(choices=AlertSeverity.choices, allow_blank=True, required=False)
    active = serializers.SerializerMethodField()

    class Meta:
        model = Silence
        fields = [
            "id",
            "owner_team",
            "tier",
            "workload_class_slug",
            "slo_kind",
            "severity",
            "reason",
            "expires_at",
            "active",
            "starts_at",
            "ended_at",
            "created_by_label",
        ]
        read_only_fields = ["id", "starts_at", "ended_at", "created_by_label"]

    def get_active(self, silence: Silence) -> bool:
        return silence.is_active_at(timezone.now())


class SilencePreviewInputSerializer(StrictSerializer):
    owner_team = serializers.CharField(required=False, allow_blank=True, max_length=80)
    tier = ChoiceField(choices=Tier.choices, allow_blank=True, required=False)
    workload_class_slug = serializers.CharField(required=False, allow_blank=True, max_length=48)
    slo_kind = ChoiceField(choices=SloKind.choices, allow_blank=True, required=False)
    severity = ChoiceField(choices=AlertSeverity.choices, allow_blank=True, required=False)


class SilencePreviewSerializer(serializers.Serializer):
    incidents = serializers.ListField(child=serializers.CharField(), help_text="Keys of the open incidents matched.")


class SilenceViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Silences: while active, matching incidents notify no one (the notifications are kept,
    marked silenced). At least one matcher, a reason and an expiry within 30 days."""

    serializer_class = SilenceSerializer
    queryset = Silence.objects.all()
    read_role = Role.VIEWER
    write_role = Role.OPERATOR
    search_fields = ["reason"]
    ordering_fields = ["starts_at", "expires_at"]
    ordering = ["-starts_at", "-id"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = incident_services.silence_create(
            actor=self.request.user,
            matchers={name: data.get(name, "") for name in incident_services.MATCHER_FIELDS},
            reason=data.get("reason", ""),
            expires_at=data["expires_at"],
            now=timezone.now(),
        )

    @extend_schema(request=None, responses={200: SilenceSerializer})
    @action(detail=True, methods=["post"])
    def end(self, request, pk=None):
        """End the silence now (before its expiry)."""
        silence = incident_services.silence_end(actor=request.user, silence=self.get_object(), now=timezone.now())
        return Response(self.get_serializer(silence).data)

    @extend_schema(request=SilencePreviewInputSerializer, responses={200: SilencePreviewSerializer})
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """What a silence with these matchers would silence now (nothing is written)."""
        params = SilencePreviewInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        incidents = incident_services.silence_preview(matchers=params.validated_data, now=timezone.now())
        return Response({"incidents": [incident.key for incident in incidents]}, status=status.HTTP_200_OK)
