"""Backfill a class's past from Cloud Monitoring (workloads/services/backfill.py): GET shows the
class's latest backfill and the window one may read; POST (operator) starts one, an action."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.api.actions import ActionSerializer
from workloads.api.serializers import StrictSerializer
from workloads.models import WorkloadClass
from workloads.services.backfill import backfill_bounds, backfill_request, latest_backfill


class BackfillInputSerializer(StrictSerializer):
    start = serializers.DateTimeField(
        required=False, help_text="Default (and at the earliest): Monitoring's retention, 6 weeks back."
    )
    end = serializers.DateTimeField(
        required=False, help_text="Default (and at the latest): where the telemetry poll's own window begins."
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"end": "The end must be after the start."})
        return attrs


class BackfillStateSerializer(serializers.Serializer):
    earliest = serializers.DateTimeField(help_text="The earliest start a backfill may have now.")
    latest = serializers.DateTimeField(help_text="The latest end a backfill may have now.")
    latest_backfill = ActionSerializer(allow_null=True)


class ClassBackfillView(APIView):
    """A class's backfill from Cloud Monitoring: its past read into the rollups, so a comparison or
    a plan's evidence does not wait for new history. Idempotent: what is read replaces the
    minutes' values, and a backfill still under way is answered instead of a second one."""

    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    @extend_schema(responses=BackfillStateSerializer)
    def get(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        earliest, latest = backfill_bounds(now=timezone.now())
        body = {"earliest": earliest, "latest": latest, "latest_backfill": latest_backfill(workload_class)}
        return Response(BackfillStateSerializer(body).data)

    @extend_schema(request=BackfillInputSerializer, responses={202: ActionSerializer})
    def post(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        body = BackfillInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        action = backfill_request(workload_class=workload_class, actor=request.user, **body.validated_data)
        return Response(ActionSerializer(action).data, status=status.HTTP_202_ACCEPTED)
