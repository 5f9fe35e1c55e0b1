"""Mixed stacks: what a class's runtime lets us observe, and migration plans (docs/migration.md)."""

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.models import WorkloadClass
from workloads.runtimes import profile
from workloads.selectors.runtimes import class_observation


class ObservationSourceSerializer(serializers.Serializer):
    source = serializers.CharField()
    label = serializers.CharField()
    metric_type = serializers.CharField(help_text="Google's metric type, for Cloud Monitoring sources.")
    resource_type = serializers.CharField(help_text="Google's monitored-resource type.")
    read = serializers.BooleanField(help_text="Whether the control plane reads this source today.")


class ObservationFigureSerializer(serializers.Serializer):
    figure = serializers.CharField()
    label = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["received", "no data", "not read"], help_text="Whether data arrived in the last hour."
    )
    sources = ObservationSourceSerializer(many=True)


class ObservationSerializer(serializers.Serializer):
    workload_class = serializers.CharField()
    runtime = serializers.CharField()
    runtime_resource = serializers.CharField()
    managed = serializers.BooleanField(help_text="Provisioned, scaled and paused by the control plane.")
    figures = ObservationFigureSerializer(many=True)


class ClassObservationView(APIView):
    """Which figures the class's runtime can give, from where, and which arrived in the last hour."""

    read_role = Role.VIEWER

    @extend_schema(responses=ObservationSerializer)
    def get(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        rows = class_observation(workload_class, now=timezone.now())
        body = {
            "workload_class": workload_class.slug,
            "runtime": workload_class.runtime,
            "runtime_resource": workload_class.runtime_resource,
            "managed": profile(workload_class.runtime).managed,
            "figures": [
                {
                    "figure": row.figure.value,
                    "label": row.label,
                    "status": row.status,
                    "sources": [
                        {
                            "source": s.source.value,
                            "label": s.label,
                            "metric_type": s.metric_type,
                            "resource_type": s.resource_type,
                            "read": s.read,
                        }
                        for s in row.sources
                    ],
                }
                for row in rows
            ],
        }
        return Response(ObservationSerializer(body).data)
