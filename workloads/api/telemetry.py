"""REST API v1: telemetry. Metric series from rollups, SLO status and budgets, burn-rate alerts,
poll runs, the worker error budget and cost reports (JSON or CSV). All reads, for viewers and up."""

import csv
import io
import re
from datetime import timedelta

import django_filters
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.api.choices import ChoiceField, choices_text
from workloads.api.filters import IsoDateTimeFilter, environment_filter
from workloads.models import Environment, PollRun, SloAlert, SloKind, WorkloadClass
from workloads.notifications.runbooks import runbook_url
from workloads.selectors import cost as cost_selectors
from workloads.selectors import series as series_selectors
from workloads.selectors import slos as slo_selectors
from workloads.selectors import telemetry as selectors
from workloads.selectors.environments import environment_by_slug

MAX_RANGE = timedelta(days=400)


def _validate_range(attrs: dict, *, default_length: timedelta) -> dict:
    end = attrs.get("end") or timezone.now()
    start = attrs.get("start") or end - default_length
    if start >= end:
        raise serializers.ValidationError({"start": "start must be before end."})
    if end - start > MAX_RANGE:
        raise serializers.ValidationError({"start": f"The range may span at most {MAX_RANGE.days} days."})
    return {**attrs, "start": start, "end": end}


# --- Metric series --------------------------------------------------------------------------------------
class MetricPointSerializer(serializers.Serializer):
    t = serializers.DateTimeField(help_text="Start of the step.")
    v = serializers.FloatField()


class MetricSeriesSerializer(serializers.Serializer):
    workload_class = serializers.CharField()
    metric = serializers.CharField()
    unit = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    step_seconds = serializers.IntegerField()
    resolution = serializers.CharField(help_text="minute or hour: which rollups the points were read from.")
    fetched_at = serializers.DateTimeField(allow_null=True, help_text="When the newest rollup shown was fetched.")
    newest_sample_at = serializers.DateTimeField(
        allow_null=True, help_text="Time of the newest provider sample (monitoring data arrives minutes late)."
    )
    points = MetricPointSerializer(many=True, help_text="Steps with data only: a gap is absent, never a zero.")


class ClassMetricsView(APIView):
    """One metric of one class over a time range, read from rollups. The step is at least `step`
    and grows so that at most 1440 points come back; long or old ranges read hourly rollups."""

    read_role = Role.VIEWER

    class InputSerializer(serializers.Serializer):
        metric = ChoiceField(choices=list(series_selectors.SERIES))
        start = serializers.DateTimeField(required=False, help_text="Default: one hour before end.")
        end = serializers.DateTimeField(required=False, help_text="Default: now.")
        step = serializers.IntegerField(required=False, min_value=60, max_value=604800, help_text="Seconds.")

        def validate(self, attrs):
            return _validate_range(attrs, default_length=timedelta(hours=1))

    @extend_schema(parameters=[InputSerializer], responses=MetricSeriesSerializer)
    def get(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass.objects.select_related("cost_rates"), slug=slug)
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        metric = data["metric"]
        series = series_selectors.class_series(
            workload_class=workload_class,
            start=data["start"],
            end=data["end"],
            now=timezone.now(),
            names=(metric,),
            step_seconds=data.get("step"),
        )
        unit = series.units[metric]
        if unit == "currency" and workload_class.cost_rates is not None:
            unit = workload_class.cost_rates.currency
        body = {
            "workload_class": workload_class.slug,
            "metric": metric,
            "unit": unit,
            "start": series.start,
            "end": series.end,
            "step_seconds": series.step_seconds,
            "resolution": series.resolution,
            "fetched_at": series.fetched_at,
            "newest_sample_at": series.newest_sample_at,
            "points": [{"t": t, "v": v} for t, v in series.points(metric)],
        }
        return Response(MetricSeriesSerializer(body).data)


# --- SLOs ------------------------------------------------------------------------------------------------
class SloWindowSerializer(serializers.Serializer):
    good = serializers.FloatField()
    total = serializers.FloatField()
    burn_rate = serializers.FloatField()


class SloBudgetSerializer(serializers.Serializer):
    unit = serializers.CharField(help_text="events, or minutes for queue-age SLOs")
    total = serializers.FloatField(help_text="Bad events (or minutes) the budget allows over the window.")
    consumed = serializers.FloatField()
    remaining = serializers.FloatField(help_text="Negative once overspent.")
    remaining_percent = serializers.FloatField()
    consumed_percent = serializers.FloatField()
    exhaustion_seconds = serializers.FloatField(
        allow_null=True, help_text="Time until the budget runs out at the last hour's burn rate; null when not burning."
    )


class GuardedRuleSerializer(serializers.Serializer):
    rule = serializers.CharField()
    severity = serializers.CharField()
    window = serializers.CharField(help_text="The rule's long window, where the events are counted.")
    events = serializers.FloatField()
    min_traffic = serializers.IntegerField()
    burn_rate = serializers.FloatField(help_text="The short window's burn rate (above the rule's factor).")
    text = serializers.CharField(help_text='"guarded: 19 of 20 events"')


SLO_EVENTS_HELP = (
    "Events over the window: for success_ratio each unit of work once, by its final outcome (good: completed; "
    "bad: dead-lettered), so a failed attempt that a retry completed is not a bad event; for completion_latency "
    "completions (good: under the threshold); for queue_age minutes (good: age under the threshold)."
)


class SloStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    workload_class = serializers.CharField()
    owner_team = serializers.CharField()
    kind = ChoiceField(choices=SloKind.choices)
    percentile = serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True)
    threshold_seconds = serializers.FloatField(allow_null=True)
    target_percent = serializers.DecimalField(max_digits=7, decimal_places=4)
    window_days = serializers.IntegerField()
    min_traffic = serializers.IntegerField()
    evaluated_at = serializers.DateTimeField(allow_null=True, help_text="Null until the evaluation tick has run.")
    good = serializers.FloatField(allow_null=True, help_text=SLO_EVENTS_HELP)
    total = serializers.FloatField(allow_null=True, help_text=SLO_EVENTS_HELP)
    attainment_percent = serializers.FloatField(allow_null=True, help_text="Null without traffic.")
    met = serializers.BooleanField(allow_null=True)
    budget = SloBudgetSerializer(allow_null=True)
    windows = serializers.DictField(child=SloWindowSerializer(), help_text="Per alert window: 5m, 30m, 1h, 6h, 3d.")
    active_alerts = serializers.IntegerField(
        help_text="Burn-rate alerts of this SLO open now (the same count wherever the SLO is shown)."
    )
    guarded = GuardedRuleSerializer(
        many=True,
        help_text="Rules burning above their factor in both windows that opened no alert because the long "
        "window saw fewer than min_traffic events.",
    )
    runbook_url = serializers.CharField()
    attempt_failure_percent = serializers.FloatField(
        allow_null=True,
        help_text="Failed attempts (retried, dead-lettered or timed out) per 100 attempts over the window: how "
        "hard the work was, which the success ratio leaves out. Null without attempts or evaluation.",
    )


def slo_body(card: slo_selectors.SloCard) -> dict:
    slo, status = card.slo, card.status
    body = {
        "id": slo.pk,
        "workload_class": slo.workload_class.slug,
        "owner_team": slo.workload_class.owner_team,
        "kind": slo.kind,
        "percentile": slo.percentile,
        "threshold_seconds": slo.threshold_seconds,
        "target_percent": slo.target_percent,
        "window_days": slo.window_days,
        "min_traffic": slo.min_traffic,
        "evaluated_at": None,
        "good": None,
        "total": None,
        "attainment_percent": card.attainment_percent,
        "met": None,
        "budget": None,
        "windows": {},
        "active_alerts": card.active_alerts,
        "guarded": [],
        "runbook_url": runbook_url(slo),
        "attempt_failure_percent": card.attempt_failure_percent,
    }
    if status is not None:
        body.update(
            evaluated_at=status.evaluated_at,
            good=status.good,
            total=status.total,
            met=status.met,
            windows=status.windows,
            guarded=[
                {**rule, "text": f"guarded: {rule['events']:g} of {rule['min_traffic']} events"}
                for rule in status.guarded
            ],
            budget={
                "unit": card.unit,
                "total": status.budget_allowed,
                "consumed": status.budget_consumed,
                "remaining": status.budget_remaining,
                "remaining_percent": status.budget_remaining_percent,
                "consumed_percent": 100 - status.budget_remaining_percent,
                "exhaustion_seconds": status.exhaustion_seconds,
            },
        )
    return body


class SloFilter(django_filters.FilterSet):
    workload_class = django_filters.CharFilter(field_name="workload_class__slug")
    environment = environment_filter("workload_class__environment")
    owner_team = django_filters.CharFilter(field_name="workload_class__owner_team")
    kind = django_filters.ChoiceFilter(choices=SloKind.choices)


class SloListView(generics.ListAPIView):
    """Every SLO with its attainment over its window, error budget (total, consumed, remaining, time
    to exhaustion) and burn rate per alert window, as of the last evaluation tick."""

    read_role = Role.VIEWER
    serializer_class = SloStatusSerializer
    filterset_class = SloFilter
    search_fields = []
    ordering_fields = []

    def get_queryset(self):
        return slo_selectors.slo_queryset()

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        data = [slo_body(card) for card in slo_selectors.slo_cards(page)]
        return self.get_paginated_response(SloStatusSerializer(data, many=True).data)


# --- Alerts ------------------------------------------------------------------------------------------------
class SloAlertSerializer(serializers.ModelSerializer):
    workload_class = serializers.CharField(source="slo.workload_class.slug")
    slo_kind = serializers.CharField(source="slo.kind")
    active = serializers.BooleanField(source="is_active")
    incident_key = serializers.CharField(source="incident.key", allow_null=True, default=None)

    class Meta:
        model = SloAlert
        fields = [
            "id",
            "workload_class",
            "slo",
            "slo_kind",
            "rule",
            "severity",
            "factor",
            "long_window_seconds",
            "short_window_seconds",
            "active",
            "opened_at",
            "resolved_at",
            "opened_long_burn_rate",
            "opened_short_burn_rate",
            "last_long_burn_rate",
            "last_short_burn_rate",
            "peak_short_burn_rate",
            "last_evaluated_at",
            "incident",
            "incident_key",
        ]
        read_only_fields = fields


class AlertFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(
        choices=[("active", "active"), ("resolved", "resolved")], method="filter_state", label="active or resolved"
    )
    workload_class = django_filters.CharFilter(field_name="slo__workload_class__slug")
    environment = environment_filter("slo__workload_class__environment")
    opened_after = IsoDateTimeFilter(field_name="opened_at", lookup_expr="gte")

    class Meta:
        model = SloAlert
        fields = ["severity", "rule"]

    def filter_state(self, queryset, name, value):
        return queryset.filter(resolved_at__isnull=(value == "active"))


class AlertListView(generics.ListAPIView):
    """Burn-rate alerts, newest first: `?state=active` for the ones open now. An alert opens when
    both windows of a rule (14.4x over 1 h and 5 min, 6x over 6 h and 30 min: page; 1x over 3 days
    and 6 h: ticket) burn faster than the factor, and resolves when the short window calms down."""

    read_role = Role.VIEWER
    serializer_class = SloAlertSerializer
    filterset_class = AlertFilter
    search_fields = []
    ordering_fields = ["opened_at", "resolved_at"]

    def get_queryset(self):
        return slo_selectors.alert_queryset()


# --- Poll runs -------------------------------------------------------------------------------------------
class PollRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = PollRun
        fields = [
            "id",
            "metric",
            "started_at",
            "finished_at",
            "window_start",
            "window_end",
            "ok",
            "error",
            "classes",
            "points",
        ]
        read_only_fields = fields


class PollRunListView(generics.ListAPIView):
    """Metric polls, newest first: one row per metric per tick, with the error when it failed."""

    read_role = Role.VIEWER
    serializer_class = PollRunSerializer
    queryset = PollRun.objects.all()
    filterset_fields = ["metric", "ok"]
    search_fields = []
    ordering_fields = ["started_at"]
    ordering = ["-started_at", "metric"]


# --- Worker error budget -----------------------------------------------------------------------------------
class BudgetConsumerSerializer(serializers.Serializer):
    source = serializers.CharField(help_text="failed_completions, timeouts or dead_letter_signature")
    label = serializers.CharField()
    events = serializers.FloatField()


class WorkerErrorBudgetSerializer(serializers.Serializer):
    workload_class = serializers.CharField()
    slo = SloStatusSerializer(allow_null=True, help_text="The success-ratio SLO; null when the class has none.")
    consumed_by = BudgetConsumerSerializer(many=True)


class ClassErrorBudgetView(APIView):
    """The failure budget the class's success-ratio SLO allows and what consumed it."""

    read_role = Role.VIEWER

    @extend_schema(responses=WorkerErrorBudgetSerializer)
    def get(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        budget = selectors.worker_error_budget(workload_class=workload_class, now=timezone.now())
        body = {
            "workload_class": workload_class.slug,
            "slo": slo_body(budget.card) if budget.card else None,
            "consumed_by": [vars(c) for c in budget.consumers],
        }
        return Response(WorkerErrorBudgetSerializer(body).data)


# --- Cost ------------------------------------------------------------------------------------------------
class CostLineSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The class slug, or the team with group_by=team.")
    name = serializers.CharField()
    owner_team = serializers.CharField()
    classes = serializers.IntegerField()
    currency = serializers.CharField(help_text="Empty when the class has no cost rates.")
    has_rates = serializers.BooleanField(help_text="False when a class (or one of the team's) has no cost rates.")
    instance_seconds = serializers.DecimalField(max_digits=20, decimal_places=3)
    vcpu_seconds = serializers.DecimalField(max_digits=24, decimal_places=6)
    gib_seconds = serializers.DecimalField(max_digits=24, decimal_places=6)
    records = serializers.IntegerField()
    tokens = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    instance_time_known = serializers.BooleanField(
        help_text="False for a class on an observed runtime whose instance time did not arrive: its compute cost, "
        "cost per 1k records and per job are unknown (null), never $0."
    )
    instance_time_source = serializers.CharField(
        help_text="Where the instance time (compute cost) comes from: the pool's instance count, the runtime's own "
        "Cloud Monitoring metrics, or why it is unknown."
    )
    compute_cost = serializers.DecimalField(
        max_digits=20,
        decimal_places=6,
        allow_null=True,
        help_text="Null when instance_time_known is false.",
    )
    records_cost = serializers.DecimalField(max_digits=20, decimal_places=6)
    tokens_cost = serializers.DecimalField(max_digits=20, decimal_places=6)
    total_cost = serializers.DecimalField(
        max_digits=20, decimal_places=6, help_text="Without compute when instance_time_known is false."
    )
    cost_per_1k_records = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True)
    cost_per_completed_job = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True)
    waste_instance_seconds = serializers.DecimalField(
        max_digits=20,
        decimal_places=3,
        help_text="Instance time while the pool was unhealthy (instances ran, workers did no work); part of "
        "instance_seconds.",
    )
    waste_cost = serializers.DecimalField(
        max_digits=20, decimal_places=6, help_text="The compute cost of waste_instance_seconds; part of compute_cost."
    )


# The CSV's columns: the line serializer's fields, in its order (one list for JSON and CSV).
COST_COLUMNS = list(CostLineSerializer().fields)


class CostTotalSerializer(serializers.Serializer):
    currency = serializers.CharField()
    total_cost = serializers.DecimalField(max_digits=20, decimal_places=6)


class CostReportSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    group_by = serializers.CharField()
    lines = CostLineSerializer(many=True)
    totals = CostTotalSerializer(many=True, help_text="One total per currency.")


# A cell a spreadsheet would read as a formula (OWASP "CSV injection"): names and teams are typed
# by people, so one starting like this is prefixed with a quote; numbers, negative ones too, stay.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def spreadsheet_safe(value):
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES) and not _NUMBER.match(value):
        return "'" + value
    return value


class CostCsvRenderer(BaseRenderer):
    """The cost report's lines as CSV (`?format=csv` or `Accept: text/csv`), formulas neutralised."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        out = io.StringIO()
        writer = csv.writer(out)
        if isinstance(data, dict) and "lines" in data:
            writer.writerow(COST_COLUMNS)
            for line in data["lines"]:
                writer.writerow(["" if line[c] is None else spreadsheet_safe(line[c]) for c in COST_COLUMNS])
        else:  # an error body: keep it readable rather than failing to render
            writer.writerow(["type", "detail"])
            body = data or {}
            writer.writerow([spreadsheet_safe(body.get("type", "error")), spreadsheet_safe(body.get("detail", ""))])
        return out.getvalue().encode(self.charset)


class CostView(APIView):
    """Cost attribution for any period: instance-seconds (from the instance-count series) x vCPU and
    memory x the class's rates, plus records and tokens at their rates; cost per 1k records and per
    completed job. Grouped by class or by owner team (split by currency). CSV with `?format=csv`."""

    read_role = Role.VIEWER
    renderer_classes = [JSONRenderer, CostCsvRenderer]

    def perform_content_negotiation(self, request, force=False):
        # DRF answers an unknown ?format= with 404; it is a bad parameter, not a missing page.
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            given = request.query_params.get("format", "")
            message = f'"{given}" is not a valid choice. Valid choices: {choices_text(["json", "csv"])}.'
            raise ValidationError({"format": [message]}) from None

    class InputSerializer(serializers.Serializer):
        start = serializers.DateTimeField(required=False, help_text="Default: midnight UTC today.")
        end = serializers.DateTimeField(required=False, help_text="Default: now.")
        group_by = ChoiceField(choices=cost_selectors.GROUP_BY_CHOICES, default="class")
        environment = serializers.CharField(required=False, help_text="An environment's slug: its classes only.")

        def validate_environment(self, value: str) -> Environment:
            environment = environment_by_slug(value)
            if environment is None:
                raise serializers.ValidationError(f"Unknown environment {value!r}.")
            return environment

        def validate(self, attrs):
            now = timezone.now()
            attrs.setdefault("end", now)
            if "start" not in attrs:
                attrs["start"] = min(attrs["end"], now).replace(hour=0, minute=0, second=0, microsecond=0)
            return _validate_range(attrs, default_length=timedelta(days=1))

    @extend_schema(
        parameters=[
            InputSerializer,
            OpenApiParameter(
                "format", str, enum=["json", "csv"], description="`json` (default) or `csv` for a spreadsheet download."
            ),
        ],
        responses=CostReportSerializer,
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        report = cost_selectors.cost_report(
            start=data["start"], end=data["end"], group_by=data["group_by"], environment=data.get("environment")
        )
        # compute_cost is null, not 0, where the instance time is unknown.
        lines = [
            {**{c: getattr(line, c) for c in COST_COLUMNS}, "compute_cost": line.known_compute_cost}
            for line in report.lines
        ]
        totals: dict[str, object] = {}
        for line in report.lines:
            if line.currency:
                totals[line.currency] = totals.get(line.currency, 0) + line.total_cost
        body = {
            "start": report.start,
            "end": report.end,
            "group_by": report.group_by,
            "lines": lines,
            "totals": [{"currency": c, "total_cost": t} for c, t in sorted(totals.items())],
        }
        response = Response(CostReportSerializer(body).data)
        if request.accepted_renderer.format == "csv":
            name = f"cost-{report.group_by}-{report.start:%Y%m%dT%H%M}-{report.end:%Y%m%dT%H%M}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
