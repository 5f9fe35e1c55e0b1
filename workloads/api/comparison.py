"""REST API v1: comparing two periods or two classes (before and after a migration)."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.api.permissions import readable_rows
from workloads.models import (
    Deployment,
    WorkloadClass,
)
from workloads.selectors import comparison as comparison_selectors
from workloads.selectors.deployments import MAX_BOUNDARY_HOURS, deployment_periods

MAX_COMPARISON_RANGE = timedelta(days=400)


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
    # Someone whose only roles are environment overrides compares the classes of their environments:
    # another class is unknown to them (a 400 on its parameter), as is its deployment.
    environment_lookup = "environment"

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
        for side in ("a_class", "b_class"):
            params.fields[side].queryset = readable_rows(request, _CLASSES, "environment")
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
        deployments = params.fields["deployment"].queryset
        params.fields["deployment"].queryset = readable_rows(request, deployments, "workload_class__environment")
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
