"""REST API v1: incident mode, per-class pauses, the scaling controller's state and preview, and
migration comparison. The same services as the buttons; viewers read, operators change."""

from datetime import timedelta

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.api.choices import ChoiceField
from workloads.models import (
    Deployment,
    Environment,
    IncidentEndReason,
    IncidentMode,
    PoolControl,
    PoolHold,
    RestoreRule,
    UnhealthyCause,
    WorkloadClass,
)
from workloads.selectors import comparison as comparison_selectors
from workloads.selectors import incidents as incident_selectors
from workloads.selectors import scaling as scaling_selectors
from workloads.selectors.deployments import MAX_BOUNDARY_HOURS, deployment_periods
from workloads.selectors.environments import environment_by_slug
from workloads.services import incidents as services
from workloads.services import pauses
from workloads.services import scaling as scaling_services

MAX_COMPARISON_RANGE = timedelta(days=400)
ENVIRONMENT_PARAMETER = OpenApiParameter(
    "environment",
    str,
    description="An environment's slug: incident mode in that environment only, with your role there. "
    "Without it: incident mode for every environment.",
)


def _minutes(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(minutes=value)


class ExpiryInputSerializer(serializers.Serializer):
    expires_in_minutes = serializers.IntegerField(
        required=False,
        min_value=5,
        max_value=7 * 24 * 60,
        help_text="Minutes from now until it ends by itself. Default: INCIDENT_DEFAULT_EXPIRY_MINUTES (4 h).",
    )


class ExtendInputSerializer(serializers.Serializer):
    expires_in_minutes = serializers.IntegerField(
        min_value=5, max_value=7 * 24 * 60, help_text="The new expiry, in minutes from now."
    )


# --- Output shapes ------------------------------------------------------------------------------------------
class ActionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    state = serializers.CharField()
    progress_done = serializers.IntegerField()
    progress_failed = serializers.IntegerField()
    progress_total = serializers.IntegerField()
    error = serializers.CharField()


class BoundsSerializer(serializers.Serializer):
    min = serializers.IntegerField()
    max = serializers.IntegerField()
    source = serializers.CharField(help_text="'baseline' or the schedule window's name.")


class PoolHoldSerializer(serializers.ModelSerializer):
    workload_class = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    # Declared: a read-only model field loses allow_blank, and "" (not restored yet) is a value.
    restore_rule = ChoiceField(choices=RestoreRule.choices, allow_blank=True, read_only=True)
    bounds_when_paused = serializers.SerializerMethodField()
    pause_action = ActionRefSerializer(allow_null=True)
    restore_action = ActionRefSerializer(allow_null=True)

    class Meta:
        model = PoolHold
        fields = [
            "id",
            "workload_class",
            "incident",
            "state",
            "hold_count",
            "reason",
            "expires_at",
            "previous_count",
            "paused_at",
            "bounds_when_paused",
            "restored_count",
            "restore_rule",
            "restore_detail",
            "last_error",
            "retention_warning",
            "created_by_label",
            "created_at",
            "ended_by_label",
            "ended_at",
            "pause_action",
            "restore_action",
        ]
        read_only_fields = fields

    @extend_schema_field(BoundsSerializer)
    def get_bounds_when_paused(self, hold: PoolHold) -> dict:
        return {"min": hold.bounds_min, "max": hold.bounds_max, "source": hold.bounds_source}


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
                expires_in=_minutes(params.validated_data.get("expires_in_minutes")), classes=classes
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
            expires_in=_minutes(data.validated_data.get("expires_in_minutes")),
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
            actor=request.user, expires_in=_minutes(data.validated_data["expires_in_minutes"]), environment=environment
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


# --- Per-class pause --------------------------------------------------------------------------------------
class PauseStateSerializer(serializers.Serializer):
    workload_class = serializers.CharField()
    paused = serializers.BooleanField()
    changed = serializers.BooleanField(help_text="False when the request found nothing new to do.")
    hold = PoolHoldSerializer(allow_null=True, help_text="The pause in force, or the last one.")
    warnings = serializers.ListField(child=serializers.CharField())


def _pause_body(workload_class, hold, *, changed: bool, warnings: list[str]) -> dict:
    return {
        "workload_class": workload_class.slug,
        "paused": pauses.open_hold(workload_class) is not None,
        "changed": changed,
        "hold": PoolHoldSerializer(hold).data if hold is not None else None,
        "warnings": warnings,
    }


class ClassPauseView(APIView):
    """Pause one class's worker pool (0 instances) until resumed or expired, with the same restore
    rule as incident mode; with `instances` > 0, hold it at that count instead (a manual override:
    the controller leaves the pool alone until it ends). Pausing a paused class returns its pause
    (`changed: false`); resuming is safe to retry. A class paused by incident mode can be resumed
    on its own."""

    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    class ClassPauseSerializer(ExpiryInputSerializer):
        reason = serializers.CharField(max_length=2000)
        instances = serializers.IntegerField(
            required=False,
            default=0,
            min_value=0,
            help_text="0 (default) pauses; more holds the pool at this count (at most the class's max_instances).",
        )

    class ClassResumeSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def _class(self, slug: str) -> WorkloadClass:
        return get_object_or_404(WorkloadClass, slug=slug)

    @extend_schema(responses=PauseStateSerializer)
    def get(self, request, slug: str):
        workload_class = self._class(slug)
        hold = pauses.open_hold(workload_class) or PoolHold.objects.filter(workload_class=workload_class).first()
        warnings = [hold.retention_warning] if hold is not None and hold.is_open and hold.retention_warning else []
        return Response(_pause_body(workload_class, hold, changed=False, warnings=warnings))

    @extend_schema(
        request=ClassPauseSerializer,
        responses={
            202: OpenApiResponse(PauseStateSerializer, description="Pausing."),
            200: OpenApiResponse(PauseStateSerializer, description="Already paused: nothing new."),
        },
    )
    def post(self, request, slug: str):
        workload_class = self._class(slug)
        data = self.ClassPauseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = pauses.pool_pause(
            workload_class=workload_class,
            actor=request.user,
            reason=data.validated_data["reason"],
            expires_in=_minutes(data.validated_data.get("expires_in_minutes")),
            instances=data.validated_data["instances"],
        )
        return Response(
            _pause_body(workload_class, result.hold, changed=result.changed, warnings=result.warnings),
            status=status.HTTP_202_ACCEPTED if result.changed else status.HTTP_200_OK,
        )

    @extend_schema(request=ExtendInputSerializer, responses=PauseStateSerializer)
    def patch(self, request, slug: str):
        """Extend the pause: it now ends `expires_in_minutes` from now."""
        workload_class = self._class(slug)
        data = ExtendInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = pauses.pool_hold_extend(
            workload_class=workload_class,
            actor=request.user,
            expires_in=_minutes(data.validated_data["expires_in_minutes"]),
        )
        return Response(_pause_body(workload_class, result.hold, changed=True, warnings=result.warnings))

    @extend_schema(
        request=ClassResumeSerializer,
        responses={
            202: OpenApiResponse(PauseStateSerializer, description="Resuming."),
            200: OpenApiResponse(PauseStateSerializer, description="Not paused: nothing new (safe retry)."),
        },
    )
    def delete(self, request, slug: str):
        workload_class = self._class(slug)
        data = self.ClassResumeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = pauses.pool_resume(
            workload_class=workload_class, actor=request.user, reason=data.validated_data["reason"]
        )
        return Response(
            _pause_body(workload_class, result.hold, changed=result.changed, warnings=[]),
            status=status.HTTP_202_ACCEPTED if result.changed else status.HTTP_200_OK,
        )


# --- Scaling: controller state, take-over, preview ----------------------------------------------------------
class PoolControlSerializer(serializers.ModelSerializer):
    workload_class = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    drifted = serializers.BooleanField(source="is_drifted", read_only=True)
    # Declared: a read-only model field loses allow_blank, and "" (healthy) is a value.
    health_cause = ChoiceField(choices=UnhealthyCause.choices, allow_blank=True, read_only=True)

    class Meta:
        model = PoolControl
        fields = [
            "workload_class",
            "controller_enabled",
            "drifted",
            "drifted_since",
            "drift_detail",
            "last_set_count",
            "last_set_at",
            "last_set_reason",
            "last_observed_count",
            "last_observed_at",
            "last_modifier",
            "last_target",
            "last_decision",
            "last_decided_at",
            "takeover_by_label",
            "takeover_at",
            "health",
            "health_cause",
            "health_detail",
            "health_since",
            "health_checked_at",
        ]
        read_only_fields = [f for f in fields if f != "controller_enabled"]


class ClassScalingView(APIView):
    """The scaling controller's view of one class's pool: what it last set and saw, its target and
    why, drift (someone else changed the pool; the controller leaves it alone until an operator
    takes over) and worker health (`unhealthy`: instances run and a backlog waits but no worker
    reports arrive; `health_cause` says crash-looping, no handler, stuck or no reports, and
    `health_detail` gives the evidence). PATCH turns the controller on or off for the class."""

    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    class ScalingUpdateSerializer(serializers.Serializer):
        controller_enabled = serializers.BooleanField()

    @extend_schema(responses=PoolControlSerializer)
    def get(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        control = scaling_selectors.pool_control_of(workload_class) or PoolControl(workload_class=workload_class)
        return Response(PoolControlSerializer(control).data)

    @extend_schema(request=ScalingUpdateSerializer, responses=PoolControlSerializer)
    def patch(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        data = self.ScalingUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        control = scaling_services.pool_control_update(
            workload_class=workload_class, actor=request.user, **data.validated_data
        )
        return Response(PoolControlSerializer(control).data)


class ClassScalingTakeOverView(APIView):
    """Take a drifted pool back: the count last seen becomes the controller's starting point and
    it manages the pool again (make sure the other writer, e.g. CREMA, has been detached)."""

    write_role = Role.OPERATOR

    @extend_schema(request=None, responses=PoolControlSerializer)
    def post(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        control = scaling_services.pool_control_take_over(workload_class=workload_class, actor=request.user)
        return Response(PoolControlSerializer(control).data)


class PreviewPointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    window = serializers.CharField(help_text="'baseline' or the schedule window's name.")
    min_instances = serializers.IntegerField()
    max_instances = serializers.IntegerField()
    target = serializers.IntegerField()


class SchedulePreviewSerializer(serializers.Serializer):
    workload_class = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    backlog = serializers.FloatField()
    hours = PreviewPointSerializer(many=True, help_text="One point per hour from start.")
    changes = PreviewPointSerializer(many=True, help_text="Each exact instant where min or max changes.")


class SchedulePreviewView(APIView):
    """The targets the scaling controller would set for the class over the coming days by schedule
    alone, for an assumed constant backlog (default 0, i.e. the windows' minimums)."""

    read_role = Role.VIEWER

    class InputSerializer(serializers.Serializer):
        start = serializers.DateTimeField(required=False, help_text="Default: the start of the current hour.")
        hours = serializers.IntegerField(required=False, default=168, min_value=1, max_value=14 * 24)
        backlog = serializers.FloatField(required=False, default=0.0, min_value=0)

    @extend_schema(parameters=[InputSerializer], responses=SchedulePreviewSerializer)
    def get(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass.objects.prefetch_related("schedules"), slug=slug)
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        start = data.get("start") or timezone.now().replace(minute=0, second=0, microsecond=0)
        preview = scaling_selectors.schedule_preview(workload_class, start, data["hours"], backlog=data["backlog"])
        body = {
            "workload_class": workload_class.slug,
            "start": preview.start,
            "end": preview.end,
            "backlog": preview.backlog,
            "hours": [vars(p) for p in preview.hours],
            "changes": [vars(p) for p in preview.changes],
        }
        return Response(SchedulePreviewSerializer(body).data)


# --- Migration comparison -------------------------------------------------------------------------------------
class PeriodFiguresSerializer(serializers.Serializer):
    workload_class = serializers.CharField(source="period.workload_class.slug")
    start = serializers.DateTimeField(source="period.start")
    end = serializers.DateTimeField(source="period.end")
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    outcomes = serializers.IntegerField(help_text="completed + failed: the count behind the failure rate.")
    failure_rate = serializers.FloatField(allow_null=True, help_text="failed / (completed + failed).")
    latency_count = serializers.IntegerField(help_text="Completions behind the latency percentiles.")
    latency_p50_seconds = serializers.FloatField(allow_null=True)
    latency_p95_seconds = serializers.FloatField(allow_null=True)
    records = serializers.IntegerField(help_text="Records behind the cost per 1k records.")
    instance_seconds = serializers.DecimalField(max_digits=20, decimal_places=3)
    total_cost = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True)
    currency = serializers.CharField()
    cost_per_1k_records = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True)
    thin = serializers.BooleanField(help_text="Too few outcomes for the rates to mean much.")


class ComparisonSerializer(serializers.Serializer):
    a = PeriodFiguresSerializer()
    b = PeriodFiguresSerializer()
    failure_rate_change = serializers.FloatField(allow_null=True, help_text="b - a, as a fraction.")
    latency_p50_ratio = serializers.FloatField(allow_null=True, help_text="b / a.")
    latency_p95_ratio = serializers.FloatField(allow_null=True, help_text="b / a.")
    cost_per_1k_ratio = serializers.FloatField(allow_null=True, help_text="b / a; null across currencies.")
    notes = serializers.ListField(child=serializers.CharField())


_CLASSES = WorkloadClass.objects.select_related("cost_rates")  # the comparison prices each side


class ComparisonView(APIView):
    """Compare two periods of one class (before vs after a migration), or two classes, on failure
    rate, lead time (completion latency p50/p95) and cost per 1k records, with the counts behind
    each number. `b_class` defaults to `a_class`."""

    read_role = Role.VIEWER

    class InputSerializer(serializers.Serializer):
        # An unknown class is a 400 on its parameter (not a 404: /comparisons exists).
        a_class = serializers.SlugRelatedField(slug_field="slug", queryset=_CLASSES)
        a_start = serializers.DateTimeField()
        a_end = serializers.DateTimeField()
        b_class = serializers.SlugRelatedField(slug_field="slug", queryset=_CLASSES, required=False)
        b_start = serializers.DateTimeField()
        b_end = serializers.DateTimeField()

        def validate(self, attrs):
            for side in ("a", "b"):
                start, end = attrs[f"{side}_start"], attrs[f"{side}_end"]
                if start >= end:
                    raise serializers.ValidationError({f"{side}_start": "start must be before end."})
                if end - start > MAX_COMPARISON_RANGE:
                    raise serializers.ValidationError(
                        {f"{side}_start": f"A period may span at most {MAX_COMPARISON_RANGE.days} days."}
                    )
            attrs.setdefault("b_class", attrs["a_class"])
            return attrs

    class DeploymentInputSerializer(serializers.Serializer):
        deployment = serializers.PrimaryKeyRelatedField(queryset=Deployment.objects.select_related("workload_class"))
        hours = serializers.IntegerField(min_value=1, max_value=MAX_BOUNDARY_HOURS, default=1)

    @extend_schema(
        parameters=[InputSerializer, DeploymentInputSerializer],
        responses=ComparisonSerializer,
        description="Either two periods (a_class, a_start, a_end, b_class, b_start, b_end), or `deployment` "
        "(an id) with `hours` (1-24, default 1): the hours before the deployment against the hours after it.",
    )
    def get(self, request):
        if "deployment" in request.query_params:
            return self._around_deployment(request)
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        periods = {
            side: comparison_selectors.Period(data[f"{side}_class"], data[f"{side}_start"], data[f"{side}_end"])
            for side in ("a", "b")
        }
        result = comparison_selectors.comparison(a=periods["a"], b=periods["b"], now=timezone.now())
        return Response(ComparisonSerializer(result).data)

    def _around_deployment(self, request):
        params = self.DeploymentInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        now = timezone.now()
        try:
            before, after = deployment_periods(
                params.validated_data["deployment"], hours=params.validated_data["hours"], now=now
            )
        except ValueError as exc:
            raise serializers.ValidationError({"deployment": str(exc)}) from None
        result = comparison_selectors.comparison(a=before, b=after, now=now)
        return Response(ComparisonSerializer(result).data)
