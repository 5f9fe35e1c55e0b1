"""REST API v1: seek a class's subscription and take snapshots (whole-subscription operations).

Reads are for viewers; every change needs the operator role. The endpoints call the same services
as the UI's buttons (workloads.services.subscriptions).
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.api.actions import ActionSerializer
from workloads.api.serializers import StrictSerializer
from workloads.models import WorkloadClass
from workloads.selectors.subscriptions import class_snapshots, snapshot_short_name
from workloads.services import subscriptions as subscription_services


class SeekInputSerializer(StrictSerializer):
    time = serializers.DateTimeField(required=False, help_text="Seek to this time (with a time zone).")
    snapshot = serializers.CharField(required=False, max_length=255, help_text="Or to this snapshot.")
    confirm = serializers.BooleanField(
        default=False, help_text="Must be true: without it the answer is 400 with the effect text to confirm."
    )
    accept_rerun = serializers.BooleanField(
        default=False,
        help_text=(
            "Needed for a seek to a time older than the class's dedup TTL: completed work from before the dedup "
            "window runs again (400 rerun_acknowledgement_required with the counts without it)."
        ),
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class SeekView(APIView):
    """Seek the class's whole subscription to a time or a snapshot (needs `confirm: true`). A
    snapshot the subscription cannot seek to is refused at once (400 `unknown_snapshot`, with the
    ones it can: `GET .../snapshots/`). The refusal without `confirm` carries the effect text and,
    for a time, `impact`: how far back dedup protects (`protected_since`), the completed keys it
    skips and those that would run again, and the dead-lettered messages that come back. A time
    before `protected_since` also needs `accept_rerun: true`."""

    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    @extend_schema(request=SeekInputSerializer, responses={202: ActionSerializer})
    def post(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        params = SeekInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        action = subscription_services.subscription_seek_request(
            actor=request.user,
            workload_class=workload_class,
            to_time=data.get("time"),
            snapshot=data.get("snapshot", ""),
            confirm=data["confirm"],
            accept_rerun=data["accept_rerun"],
            reason=data.get("reason", ""),
        )
        return Response(ActionSerializer(action).data, status=status.HTTP_202_ACCEPTED)


class SnapshotInputSerializer(StrictSerializer):
    name = serializers.CharField(
        required=False, allow_blank=True, max_length=255, help_text="Default: before-deploy-<class>-<time>."
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class SnapshotSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The short name, as a seek takes it.")
    resource = serializers.CharField(help_text="projects/P/snapshots/S")
    expire_time = serializers.DateTimeField(allow_null=True)


class SnapshotView(APIView):
    """The snapshots of the class's subscription (GET), and take a named one (POST, e.g. before a
    deploy) to seek back to."""

    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    @extend_schema(responses=SnapshotSerializer(many=True))
    def get(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        body = [
            {"name": snapshot_short_name(info), "resource": info.name, "expire_time": info.expire_time}
            for info in class_snapshots(workload_class)
        ]
        return Response(SnapshotSerializer(body, many=True).data)

    @extend_schema(request=SnapshotInputSerializer, responses={202: ActionSerializer})
    def post(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        params = SnapshotInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        action = subscription_services.snapshot_create_request(
            actor=request.user,
            workload_class=workload_class,
            name=params.validated_data.get("name", ""),
            reason=params.validated_data.get("reason", ""),
        )
        return Response(ActionSerializer(action).data, status=status.HTTP_202_ACCEPTED)
