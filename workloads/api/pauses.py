"""REST API v1: pausing, extending and resuming one class's pool."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.api.holds import (
    ExpiryInputSerializer,
    ExtendInputSerializer,
    PoolHoldSerializer,
    minutes_delta,
)
from workloads.models import (
    PoolHold,
    WorkloadClass,
)
from workloads.services import pauses


class PauseStateSerializer(serializers.Serializer):
    workload_class = serializers.CharField()
    paused = serializers.BooleanField()
    changed = serializers.BooleanField(help_text="False when the request found nothing new to do.")
    hold = PoolHoldSerializer(allow_null=True, help_text="The pause in force, or the last one.")
    warnings = serializers.ListField(child=serializers.CharField())


def _pause_body(workload_class, hold, *, changed: bool, warnings: list[str]) -> dict:
    """`hold` is the class's open hold if it has one (a class has at most one), else its last: each
    caller read it, or wrote it, in the transaction that decided, so whether it is open is whether
    the class is paused, without asking the database again."""
    return {
        "workload_class": workload_class.slug,
        "paused": hold is not None and hold.is_open,
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
            expires_in=minutes_delta(data.validated_data.get("expires_in_minutes")),
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
            expires_in=minutes_delta(data.validated_data["expires_in_minutes"]),
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
