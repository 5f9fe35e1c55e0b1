"""REST API v1: the scaling controller's state for a class, taking the pool over, and a schedule's
preview."""

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.api.choices import ChoiceField
from workloads.models import (
    PoolControl,
    UnhealthyCause,
    WorkloadClass,
)
from workloads.selectors import scaling as scaling_selectors
from workloads.services import scaling as scaling_services


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
