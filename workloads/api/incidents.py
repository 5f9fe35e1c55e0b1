"""REST API v1: incident mode (every environment, or one). The same services as the buttons; viewers
read, operators change."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.api.choices import ChoiceField
from workloads.api.holds import (
    ActionRefSerializer,
    ExpiryInputSerializer,
    ExtendInputSerializer,
    PoolHoldSerializer,
    minutes_delta,
)
from workloads.models import (
    Environment,
    IncidentEndReason,
    IncidentMode,
    WorkloadClass,
)
from workloads.selectors import incidents as incident_selectors
from workloads.selectors.environments import environment_by_slug
from workloads.services import incidents as services

ENVIRONMENT_PARAMETER = OpenApiParameter(
    "environment",
    str,
    description="An environment's slug: incident mode in that environment only, with your role there. "
    "Without it: incident mode for every environment.",
)


class IncidentSerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(read_only=True)
    # Declared: a read-only model field loses allow_blank, and "" (still active) is a value.
    end_reason = ChoiceField(choices=IncidentEndReason.choices, allow_blank=True, read_only=True)
    enter_action = ActionRefSerializer(allow_null=True)
    exit_action = ActionRefSerializer(allow_null=True)
    holds = serializers.SerializerMethodField()

    environment = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True, help_text="null: every environment."
    )

    class Meta:
        model = IncidentMode
        fields = [
            "id",
            "environment",
            "is_active",
            "reason",
            "ticket",
            "started_by_label",
            "started_at",
            "expires_at",
            "ended_at",
            "ended_by_label",
            "end_reason",
            "enter_action",
            "exit_action",
            "holds",
        ]
        read_only_fields = fields

    @extend_schema_field(PoolHoldSerializer(many=True))
    def get_holds(self, incident: IncidentMode) -> list:
        return PoolHoldSerializer(incident_selectors.incident_holds(incident), many=True).data


class IncidentStateSerializer(serializers.Serializer):
    active = serializers.BooleanField(help_text="Whether incident mode is in force now.")
    changed = serializers.BooleanField(help_text="False when the request found nothing new to do.")
    incident = IncidentSerializer(allow_null=True, help_text="The active incident, or the one this request ended.")
    warnings = serializers.ListField(
        child=serializers.CharField(),
        help_text="Pools whose subscription retention is shorter than the expiry: messages could be lost.",
    )


def _incident_body(incident, *, changed: bool, warnings: list[str], environment=None) -> dict:
    return {
        "active": incident_selectors.active_incident(environment, any_environment=False) is not None,
        "changed": changed,
        "incident": IncidentSerializer(incident).data if incident is not None else None,
        "warnings": warnings,
    }


class IncidentModeView(APIView):
    """Incident mode: every deferrable class's worker pool is set to 0 instances (after recording
    its count) until exit or expiry; exit restores each pool to the count it had, or to the
    schedule's current target if the schedule moved meanwhile.

    Entering while already in incident mode returns the active incident (`changed: false`);
    exiting is safe to retry (a restore that failed is retried, otherwise nothing happens). The
    pausing and restoring run as actions (see `enter_action` / `exit_action` and /api/v1/actions/)."""

    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    def _environment(self, request) -> Environment | None:
        """`?environment=<slug>`: incident mode in that environment only (its deferrable classes), with
        the role the caller has there. Without it: incident mode for every environment."""
        if not hasattr(request, "_incident_environment"):
            slug = request.query_params.get("environment", "")
            environment = environment_by_slug(slug)
            if slug and environment is None:
                raise serializers.ValidationError({"environment": [f"Unknown environment {slug!r}."]})
            request._incident_environment = environment
        return request._incident_environment

    def permission_environment_id(self, request) -> int | None:
        environment = self._environment(request)
        return environment.pk if environment else None

    class IncidentEnterSerializer(ExpiryInputSerializer):
        reason = serializers.CharField(max_length=2000, help_text="Why: shown in the banner on every page.")
        ticket = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    class IncidentExitSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    @extend_schema(parameters=[ExpiryInputSerializer, ENVIRONMENT_PARAMETER], responses=IncidentStateSerializer)
    def get(self, request):
        """The active incident (or null), and the retention warnings entering now would give for
        `expires_in_minutes` (default 4 h), to show before confirming."""
        params = ExpiryInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        environment = self._environment(request)
        incident = incident_selectors.active_incident(environment, any_environment=False)
        classes = None
        if environment is not None:
            classes = WorkloadClass.objects.filter(
                environment=environment, tier="deferrable", runtime="worker_pool"
            ).order_by("slug")
        warnings = (
            [h.retention_warning for h in incident.holds.all() if h.retention_warning and h.is_open]
            if incident is not None
            else incident_selectors.retention_warnings(
                expires_in=minutes_delta(params.validated_data.get("expires_in_minutes")), classes=classes
            )
        )
        return Response(_incident_body(incident, changed=False, warnings=warnings, environment=environment))

    @extend_schema(
        request=IncidentEnterSerializer,
        parameters=[ENVIRONMENT_PARAMETER],
        responses={
            202: OpenApiResponse(IncidentStateSerializer, description="Entered: the pools are being paused."),
            200: OpenApiResponse(IncidentStateSerializer, description="Already in incident mode: nothing new."),
        },
    )
    def post(self, request):
        data = self.IncidentEnterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.incident_mode_enter(
            actor=request.user,
            reason=data.validated_data["reason"],
            ticket=data.validated_data["ticket"],
            expires_in=minutes_delta(data.validated_data.get("expires_in_minutes")),
            environment=self._environment(request),
        )
        return Response(
            _incident_body(
                result.incident,
                changed=result.changed,
                warnings=result.warnings,
                environment=self._environment(request),
            ),
            status=status.HTTP_202_ACCEPTED if result.changed else status.HTTP_200_OK,
        )

    @extend_schema(request=ExtendInputSerializer, parameters=[ENVIRONMENT_PARAMETER], responses=IncidentStateSerializer)
    def patch(self, request):
        """Extend: the incident now ends `expires_in_minutes` from now."""
        data = ExtendInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        environment = self._environment(request)
        result = services.incident_mode_extend(
            actor=request.user,
            expires_in=minutes_delta(data.validated_data["expires_in_minutes"]),
            environment=environment,
        )
        return Response(
            _incident_body(result.incident, changed=True, warnings=result.warnings, environment=environment)
        )

    @extend_schema(
        request=IncidentExitSerializer,
        parameters=[ENVIRONMENT_PARAMETER],
        responses={
            202: OpenApiResponse(IncidentStateSerializer, description="Exited: the pools are being restored."),
            200: OpenApiResponse(IncidentStateSerializer, description="Not active: nothing new (safe retry)."),
        },
    )
    def delete(self, request):
        data = self.IncidentExitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        environment = self._environment(request)
        result = services.incident_mode_exit(
            actor=request.user, reason=data.validated_data["reason"], environment=environment
        )
        return Response(
            _incident_body(result.incident, changed=result.changed, warnings=[], environment=environment),
            status=status.HTTP_202_ACCEPTED if result.changed else status.HTTP_200_OK,
        )
