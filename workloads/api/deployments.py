"""`/api/v1/classes/<slug>/deployments/`: CI systems record a deployment of the class's worker code
(version, commit, who, link); viewers list them. Deployments mark the class's charts, the audit
log and the comparison screen (docs/api.md, "Deployments")."""

import re

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.api.schema import ErrorSerializer
from workloads.models import ApiToken, DeploymentSource, WorkloadClass
from workloads.selectors.deployments import MAX_DEPLOYMENTS, class_deployments
from workloads.services.deployments import deployment_record


class DeploymentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    workload_class = serializers.CharField(source="workload_class.slug")
    deployed_at = serializers.DateTimeField()
    source = serializers.CharField()
    version = serializers.CharField()
    commit = serializers.CharField()
    deployed_by = serializers.CharField()
    link = serializers.CharField()
    revision = serializers.CharField()
    recorded_by = serializers.CharField(source="recorded_by_label")
    label = serializers.CharField()


class DeploymentInputSerializer(serializers.Serializer):
    version = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    commit = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    deployed_by = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    link = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    deployed_at = serializers.DateTimeField(required=False, help_text="Default: now.")


class ClassDeploymentsView(APIView):
    """POST records a deployment; GET lists the class's latest (newest first)."""

    @property
    def token_scope_kind(self) -> str:
        # Writing takes a deploy-scoped token (deploy:<slug>, deploy:* or *), like ingestion;
        # reading is an ordinary read.
        return "deploy" if self.request.method == "POST" else "api"

    def required_role(self, request) -> Role:
        if request.method != "POST":
            return Role.VIEWER
        # CI authenticates with a deploy-scoped token of any role; people need operator.
        return Role.VIEWER if isinstance(request.auth, ApiToken) else Role.OPERATOR

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, description=f"At most {MAX_DEPLOYMENTS} (default 50).")],
        responses=DeploymentSerializer(many=True),
    )
    def get(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        limit = request.query_params.get("limit", "50")
        if not re.fullmatch(r"[0-9]{1,3}", limit) or not 1 <= int(limit) <= MAX_DEPLOYMENTS:
            raise serializers.ValidationError({"limit": f"A whole number from 1 to {MAX_DEPLOYMENTS}."})
        rows = class_deployments(workload_class=workload_class, limit=int(limit))
        return Response(DeploymentSerializer(rows, many=True).data)

    @extend_schema(
        request=DeploymentInputSerializer,
        responses={
            201: DeploymentSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Invalid fields"),
        },
    )
    def post(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        data = DeploymentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = deployment_record(
            workload_class=workload_class,
            actor=request.user,
            source=DeploymentSource.API,
            now=timezone.now(),
            **data.validated_data,
        )
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)
