"""Mixed stacks: what a class's runtime lets us observe, and migration plans (docs/migration.md)."""

import csv
import io

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role, readable_environment_ids
from workloads.api.choices import ChoiceField
from workloads.api.permissions import check_classes_role
from workloads.api.serializers import StrictModelSerializer, StrictSerializer
from workloads.api.telemetry import spreadsheet_safe
from workloads.models import ControlSignal, MigrationDecision, MigrationPlan, SignalKind, WorkloadClass
from workloads.runtimes import profile
from workloads.selectors import migration as migration_selectors
from workloads.selectors.migration import plan_evidence
from workloads.selectors.runtimes import class_observation, signal_state
from workloads.services import migration as migration_services
from workloads.services.migration import THRESHOLD_FIELDS
from workloads.services.runtime_control import control_signal_acknowledge, control_signal_send


class ObservationSourceSerializer(serializers.Serializer):
    source = serializers.CharField()
    label = serializers.CharField()
    metric_type = serializers.CharField(help_text="Google's metric type, for Cloud Monitoring sources.")
    resource_type = serializers.CharField(help_text="Google's monitored-resource type.")
    read = serializers.BooleanField(help_text="Whether the control plane reads this source today.")


class ObservationFigureSerializer(serializers.Serializer):
    figure = serializers.CharField()
    label = serializers.CharField()
    status = ChoiceField(
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


# --- migration plans -----------------------------------------------------------------------------------
class IntervalSerializer(serializers.Serializer):
    estimate = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text="95 % interval, lower bound.")
    high = serializers.FloatField(allow_null=True, help_text="95 % interval, upper bound.")
    n = serializers.IntegerField(help_text="The sample size behind it.")


class SideSerializer(serializers.Serializer):
    slug = serializers.CharField()
    runtime = serializers.CharField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    failure_rate = IntervalSerializer()
    lead_time_p50 = IntervalSerializer(help_text="Seconds, ingestion to completion.")
    lead_time_p95 = IntervalSerializer(help_text="Seconds, ingestion to completion.")
    queue_age_attainment = IntervalSerializer(help_text="Share of minutes within the queue-age SLO; n = minutes.")
    cost_per_1k_records = IntervalSerializer(
        help_text="No estimate when the side's instance time is unknown (cost_source says why)."
    )
    currency = serializers.CharField()
    records = serializers.IntegerField()
    cost_source = serializers.CharField(
        help_text="Where the side's instance time (compute cost) comes from, or why it is unknown."
    )
    outcomes_source = serializers.CharField(
        help_text="Where completed and failed come from: the worker kit's or Celery's reports, or (without "
        "them) the runtime's own executions and errors."
    )


class CheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    verdict = ChoiceField(choices=["pass", "fail", "insufficient"])
    detail = serializers.CharField()


class EvidenceSerializer(serializers.Serializer):
    phase = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    old = SideSerializer()
    new = SideSerializer(allow_null=True, help_text="Null in the baseline: nothing is routed yet.")
    checks = CheckSerializer(many=True)
    verdict = serializers.CharField(help_text="pass, fail, insufficient, or 'not gated'.")


class DecisionSerializer(serializers.ModelSerializer):
    action = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = MigrationDecision
        fields = ["id", "from_phase", "to_phase", "verdict", "overridden", "reason", "action", "acted_by_label",
                  "acted_at", "evidence"]  # fmt: skip
        read_only_fields = fields


class PlanSerializer(StrictModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", queryset=WorkloadClass.objects.all())
    target = serializers.SlugRelatedField(slug_field="slug", queryset=WorkloadClass.objects.all())
    route_percent = serializers.SerializerMethodField()

    class Meta:
        model = MigrationPlan
        fields = ["id", "name", "source", "target", "phase", "phase_started_at", "route_percent", *THRESHOLD_FIELDS,
                  "created_at"]  # fmt: skip
        read_only_fields = ["id", "phase", "phase_started_at", "created_at"]
        extra_kwargs = {"name": {"required": False}}
        validators = []  # the service says "already has a plan under way" (409), clearer than DRF's unique set

    def get_route_percent(self, plan: MigrationPlan) -> int:
        return plan.source.route_percent if plan.source.route_to_id == plan.target_id else 0


class PlanDetailSerializer(PlanSerializer):
    evidence = serializers.SerializerMethodField()
    decisions = DecisionSerializer(many=True, read_only=True)

    class Meta(PlanSerializer.Meta):
        fields = [*PlanSerializer.Meta.fields, "evidence", "decisions"]

    @extend_schema_field(EvidenceSerializer)
    def get_evidence(self, plan: MigrationPlan) -> dict:
        return plan_evidence(plan, now=timezone.now()).as_dict()


# Someone whose only roles are environment overrides reads the plans whose two classes are both in
# their environments, and the candidates among their classes (workloads/api/permissions.py).
PLANS_BY_ENVIRONMENT = staticmethod(migration_selectors.plans_in_environments)


class MigrationPlanListView(APIView):
    """Migration plans; POST (admin) creates one in its baseline phase."""

    read_role = Role.VIEWER
    write_role = Role.ADMIN
    environment_lookup = PLANS_BY_ENVIRONMENT

    @extend_schema(responses=PlanSerializer(many=True))
    def get(self, request):
        plans = migration_selectors.plans(environment_ids=readable_environment_ids(request.user))
        return Response(PlanSerializer(plans, many=True).data)

    @extend_schema(request=PlanSerializer, responses={201: PlanSerializer})
    def post(self, request):
        body = PlanSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        plan = migration_services.migration_plan_create(
            actor=request.user, name=data.pop("name", ""), source=data.pop("source"), target=data.pop("target"), **data
        )
        return Response(PlanSerializer(plan).data, status=status.HTTP_201_CREATED)


def _plan_or_404(pk: int, *, environment_ids: set[int] | None = None) -> MigrationPlan:
    plan = migration_selectors.plan_for_detail(pk, environment_ids=environment_ids)
    if plan is None:
        raise Http404("No such migration plan.")
    return plan


class MigrationPlanDetailView(APIView):
    """A plan with the evidence of its phase under way and every decision taken on it."""

    read_role = Role.VIEWER
    environment_lookup = PLANS_BY_ENVIRONMENT

    @extend_schema(responses=PlanDetailSerializer)
    def get(self, request, pk: int):
        plan = _plan_or_404(pk, environment_ids=readable_environment_ids(request.user))
        return Response(PlanDetailSerializer(plan).data)


ADVANCE_PHASES = ["canary", "ramp", "cut_over", "rolled_back"]


class AdvanceInputSerializer(StrictSerializer):
    to_phase = ChoiceField(choices=ADVANCE_PHASES)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    override = serializers.BooleanField(
        default=False, help_text="Act although the gate did not pass (the verdict is recorded with your name)."
    )


class StepOutputSerializer(serializers.Serializer):
    decision = DecisionSerializer()
    action = serializers.IntegerField(help_text="Follow it at /api/v1/actions/<id>/.")


def _step_response(decision: MigrationDecision) -> Response:
    body = {"decision": DecisionSerializer(decision).data, "action": decision.action_id}
    return Response(body, status=status.HTTP_202_ACCEPTED)


class MigrationPlanAdvanceView(APIView):
    """Judge the phase under way against the gate and move the plan on (an action). A gate that
    does not pass answers 409 `gate_not_passed` with its checks, unless `override` is true."""

    write_role = Role.OPERATOR
    class_in_request = True  # the role in the plan's classes' environments

    @extend_schema(request=AdvanceInputSerializer, responses={202: StepOutputSerializer})
    def post(self, request, pk: int):
        plan = _plan_or_404(pk)
        check_classes_role(request, (plan.source, plan.target), Role.OPERATOR)
        body = AdvanceInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decision = migration_services.migration_plan_advance(plan=plan, actor=request.user, **body.validated_data)
        return _step_response(decision)


class RollbackInputSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class MigrationPlanRollbackView(APIView):
    """Route every event back to the old runtime at once (never gated)."""

    write_role = Role.OPERATOR
    class_in_request = True  # the role in the plan's classes' environments

    @extend_schema(request=RollbackInputSerializer, responses={202: StepOutputSerializer})
    def post(self, request, pk: int):
        plan = _plan_or_404(pk)
        check_classes_role(request, (plan.source, plan.target), Role.OPERATOR)
        body = RollbackInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decision = migration_services.migration_plan_advance(
            plan=plan, actor=request.user, to_phase="rolled_back", reason=body.validated_data["reason"]
        )
        return _step_response(decision)


class EvidenceCsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        out = io.StringIO()
        writer = csv.writer(out)
        if isinstance(data, dict) and "csv_rows" in data:
            writer.writerow(migration_selectors.EVIDENCE_CSV_HEADER)
            for row in data["csv_rows"]:
                writer.writerow(["" if v is None else spreadsheet_safe(v) for v in row])
        else:
            writer.writerow(["type", "detail"])
            body = data or {}
            writer.writerow([spreadsheet_safe(body.get("type", "error")), spreadsheet_safe(body.get("detail", ""))])
        return out.getvalue().encode(self.charset)


class MigrationPlanEvidenceView(APIView):
    """The evidence of the phase under way: JSON, or CSV with `?format=csv` (one row per side)."""

    read_role = Role.VIEWER
    environment_lookup = PLANS_BY_ENVIRONMENT
    renderer_classes = [JSONRenderer, EvidenceCsvRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format", str, enum=["json", "csv"], description="`json` (default) or `csv` for a spreadsheet download."
            )
        ],
        responses=EvidenceSerializer,
    )
    def get(self, request, pk: int):
        plan = _plan_or_404(pk, environment_ids=readable_environment_ids(request.user))
        report = plan_evidence(plan, now=timezone.now())
        if request.accepted_renderer.format == "csv":
            return Response({"csv_rows": migration_selectors.evidence_csv_rows(report)})
        return Response(EvidenceSerializer(report.as_dict()).data)


class CandidateSerializer(serializers.Serializer):
    workload_class = serializers.CharField(source="workload_class.slug")
    runtime = serializers.CharField(source="workload_class.runtime")
    outcomes = serializers.IntegerField()
    failure_rate = serializers.FloatField(allow_null=True)
    retries = serializers.IntegerField(help_text="Failed attempts over the window.")
    slo_misses = serializers.IntegerField(help_text="SLO alerts opened over the window.")
    cost_per_1k_records = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True)
    score = serializers.FloatField(help_text="Sum of the class's noise ranks (0 quietest .. 1 noisiest each).")
    reasons = serializers.ListField(child=serializers.CharField())
    movable = serializers.BooleanField(help_text="On an observed runtime and in no plan yet.")


class CandidatesSerializer(serializers.Serializer):
    best = CandidateSerializer(allow_null=True)
    ranking = CandidateSerializer(many=True)


class MigrationCandidatesView(APIView):
    """Where to start: every workload ranked by noise over the last 7 days, and the best first
    candidate to move (the noisiest on an observed runtime without a plan), with why."""

    read_role = Role.VIEWER
    environment_lookup = "environment"  # of each class ranked

    @extend_schema(responses=CandidatesSerializer)
    def get(self, request):
        environment_ids = readable_environment_ids(request.user)
        ranking = migration_selectors.migration_candidates(now=timezone.now(), environment_ids=environment_ids)
        body = {"best": migration_selectors.best_candidate(ranking), "ranking": ranking}
        return Response(CandidatesSerializer(body).data)


# --- the escape hatch: control signals -------------------------------------------------------------------
class ControlSignalSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField(help_text="pending, failed, sent, acknowledged or silent.")

    class Meta:
        model = ControlSignal
        fields = ["id", "kind", "reason", "incident", "requested_by_label", "action", "created_at", "sent_at",
                  "last_error", "acknowledged_at", "acknowledged_by_label", "state"]  # fmt: skip
        read_only_fields = fields

    def get_state(self, signal: ControlSignal) -> str:
        return signal_state(signal, now=timezone.now())


class SignalInputSerializer(StrictSerializer):
    kind = ChoiceField(choices=SignalKind.values)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class ClassControlSignalsView(APIView):
    """Control signals of a class on an observed runtime: GET lists the latest, POST (operator)
    sends `pause` or `resume` to its control webhook (an action, 202)."""

    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    @extend_schema(responses=ControlSignalSerializer(many=True))
    def get(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        signals = ControlSignal.objects.filter(workload_class=workload_class).select_related("action")[:50]
        return Response(ControlSignalSerializer(signals, many=True).data)

    @extend_schema(request=SignalInputSerializer, responses={202: ControlSignalSerializer})
    def post(self, request, slug: str):
        workload_class = get_object_or_404(WorkloadClass, slug=slug)
        body = SignalInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        signal = control_signal_send(workload_class=workload_class, actor=request.user, **body.validated_data)
        return Response(ControlSignalSerializer(signal).data, status=status.HTTP_202_ACCEPTED)


class ControlSignalAckView(APIView):
    """The runtime acknowledges a signal it acted on (operator role: give the runtime a token)."""

    write_role = Role.OPERATOR

    @extend_schema(request=None, responses=ControlSignalSerializer)
    def post(self, request, slug: str, pk: int):
        signal = get_object_or_404(ControlSignal.objects.select_related("workload_class"), pk=pk,
                                   workload_class__slug=slug)  # fmt: skip
        signal = control_signal_acknowledge(signal=signal, actor=request.user)
        return Response(ControlSignalSerializer(signal).data)
