"""REST API v1: dead-letter triage, replays and triage rules (seek and snapshots: api/subscriptions.py).

Reads are for viewers; every change needs the operator role. The endpoints call the same services
as the UI's buttons.
"""

import django_filters
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action as route
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.roles import Role
from workloads.api.actions import ActionSerializer, ReplayOutcomesOnListMixin
from workloads.api.choices import ChoiceField, ChoiceListingFilterBackend
from workloads.api.filters import IsoDateTimeFilter, environment_filter
from workloads.api.parsers import PayloadJSONParser
from workloads.api.permissions import EnvironmentVisibilityFilterBackend, check_class_role
from workloads.api.serializers import StrictModelSerializer, StrictSerializer
from workloads.domain.payloads import hostile_input_error
from workloads.models import Action, ActionKind, DeadLetter, DeadLetterStatus, TriageRule, WorkloadClass
from workloads.selectors.deadletters import (
    ANY_STATUS,
    REPLAYABLE_BY_DEFAULT,
    TREND_HOURS,
    DeadLetterFilter,
    dead_letter_attention,
    dead_letter_groups,
)
from workloads.services import deadletters as services
from workloads.services import triage as triage_services
from workloads.services.actions import action_cancel


# --- Dead letters -------------------------------------------------------------------------------------
class DeadLetterSerializer(serializers.ModelSerializer):
    workload_class = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    replay_action = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    triage_rule = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = DeadLetter
        fields = [
            "id",
            "workload_class",
            "message_id",
            "last_message_id",
            "status",
            "idempotency_key",
            "error_type",
            "error_message",
            "error_signature",
            "delivery_attempts",
            "replay_count",
            "dead_letter_count",
            "first_seen",
            "last_seen",
            "payload_size",
            "payload_truncated",
            "replayed_message_id",
            "replayed_at",
            "replay_action",
            "discarded_by_label",
            "discarded_at",
            "discard_reason",
            "held_at",
            "triage_rule",
            "triaged_at",
            "edited_by_label",
            "edited_at",
            "edit_version",
        ]
        read_only_fields = fields


@extend_schema_field({"description": "The payload as JSON (payload_format json); null otherwise."})
class AnyJsonField(serializers.JSONField):
    pass


class DeadLetterDetailSerializer(DeadLetterSerializer):
    payload = AnyJsonField(read_only=True)
    edited_payload = AnyJsonField(read_only=True)

    class Meta(DeadLetterSerializer.Meta):
        fields = [
            *DeadLetterSerializer.Meta.fields,
            "payload_format",
            "payload",
            "payload_text",
            "attributes",
            "ordering_key",
            "edited_payload",
        ]
        read_only_fields = fields


class DeadLetterFilterSet(django_filters.FilterSet):
    """The list's query parameters. The dead-letter filter (`DeadLetterFilter`) selects the rows,
    the same one replays and discards use, so a list and a replay of the same filter agree."""

    workload_class = django_filters.CharFilter(field_name="workload_class__slug")
    environment = environment_filter("workload_class__environment")
    status = django_filters.MultipleChoiceFilter(choices=DeadLetterStatus.choices, help_text="Default: any status.")
    seen_after = IsoDateTimeFilter(field_name="last_seen", lookup_expr="gte", help_text="On last seen, inclusive.")
    seen_before = IsoDateTimeFilter(field_name="last_seen", lookup_expr="lt", help_text="On last seen, exclusive.")

    class Meta:
        model = DeadLetter
        fields = ["error_signature", "error_type", "idempotency_key", "message_id"]

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        workload_class = None
        if data.get("workload_class"):
            workload_class = WorkloadClass.objects.filter(slug=data["workload_class"]).first()
            if workload_class is None:
                return queryset.none()
        selection = DeadLetterFilter(
            workload_class=workload_class,
            error_signature=data.get("error_signature") or "",
            error_type=data.get("error_type") or "",
            seen_after=data.get("seen_after"),
            seen_before=data.get("seen_before"),
            statuses=tuple(data.get("status") or ANY_STATUS),
        )
        rows = selection.apply(queryset)
        if data.get("environment") is not None:
            rows = rows.filter(workload_class__environment=data["environment"])
        # Lookups of single messages, beside the filter.
        for name in ("idempotency_key", "message_id"):
            if data.get(name):
                rows = rows.filter(**{name: data[name]})
        return rows


@extend_schema_serializer(deprecate_fields=["statuses"])
class SelectionSerializer(StrictSerializer):
    """Which dead letters of one class: `ids`, or a filter with the dead-letter list's names
    (error_signature, error_type, status, seen_after, seen_before)."""

    workload_class = serializers.SlugRelatedField(slug_field="slug", queryset=WorkloadClass.objects.all())
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=services.MAX_SELECTED_IDS
    )
    error_signature = serializers.CharField(required=False, allow_blank=True, max_length=64)
    error_type = serializers.CharField(required=False, allow_blank=True, max_length=200)
    seen_after = serializers.DateTimeField(required=False, help_text="On last seen, inclusive.")
    seen_before = serializers.DateTimeField(required=False, help_text="On last seen, exclusive.")
    status = serializers.ListField(
        child=ChoiceField(choices=DeadLetterStatus.choices),
        required=False,
        allow_empty=False,
        help_text="With a filter: which statuses it selects (default: new), as the list's `status`.",
    )
    statuses = serializers.ListField(
        child=ChoiceField(choices=DeadLetterStatus.choices),
        required=False,
        allow_empty=False,
        help_text="Deprecated: the old name of `status`, still accepted.",
    )

    def validate(self, attrs):
        filters = ("error_signature", "error_type", "seen_after", "seen_before")
        if attrs.get("ids") and any(attrs.get(k) for k in filters):
            raise serializers.ValidationError({"ids": "Give either ids or a filter, not both."})
        if attrs.get("seen_after") and attrs.get("seen_before") and attrs["seen_after"] >= attrs["seen_before"]:
            raise serializers.ValidationError({"seen_after": "seen_after must be before seen_before."})
        if attrs.get("status") and attrs.get("statuses") and set(attrs["status"]) != set(attrs["statuses"]):
            raise serializers.ValidationError({"statuses": "Give status only (statuses is its old name)."})
        return attrs

    def selection(self) -> DeadLetterFilter:
        data = self.validated_data
        return DeadLetterFilter(
            workload_class=data["workload_class"],
            ids=tuple(data.get("ids") or ()),
            error_signature=data.get("error_signature", ""),
            error_type=data.get("error_type", ""),
            seen_after=data.get("seen_after"),
            seen_before=data.get("seen_before"),
            statuses=tuple(data.get("status") or data.get("statuses") or REPLAYABLE_BY_DEFAULT),
        )


CONFIRM_COUNT_HELP = (
    "With a filter that selects more than DEAD_LETTER_BULK_CONFIRM_THRESHOLD dead letters (default 100), "
    "or every dead letter of the class in the selected statuses: how many you confirm acting on. Without it, "
    "or when it differs, the request is refused (400 confirmation_required, with the count to confirm)."
)


class DiscardInputSerializer(SelectionSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    confirm_count = serializers.IntegerField(required=False, min_value=0, help_text=CONFIRM_COUNT_HELP)


class DiscardOutputSerializer(serializers.Serializer):
    discarded = serializers.IntegerField()


class PayloadField(serializers.JSONField):
    """A payload as parsed JSON; values no payload may hold (too deep, non-finite numbers, lone
    surrogates, NUL) are refused naming their path, like at ingestion."""

    def to_internal_value(self, data):
        problem = hostile_input_error(data, allow_nul=False)  # stored as jsonb
        if problem is not None:
            path = f"payload.{problem.field}" if problem.field else "payload"
            raise serializers.ValidationError(f"{path}: {problem.message}", code=problem.code)
        return super().to_internal_value(data)


class EditAndReplayInputSerializer(StrictSerializer):
    payload = PayloadField(help_text="The corrected payload; validated against the class's schema.")
    edit_version = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="The dead letter's edit_version you read: if someone edited it since, 409 (edit_conflict).",
    )
    velocity = serializers.FloatField(required=False, allow_null=True)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class DeadLetterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The dead-letter mirror. Rows are never deleted: discarding keeps them with their status."""

    queryset = DeadLetter.objects.select_related("workload_class")
    read_role = Role.VIEWER
    write_role = Role.OPERATOR
    class_in_request = True  # each changing route checks the role in its class's environment
    environment_lookup = "workload_class__environment"
    filterset_class = DeadLetterFilterSet
    search_fields = ["message_id", "idempotency_key", "error_type", "error_message"]
    ordering_fields = ["last_seen", "first_seen", "replay_count", "dead_letter_count"]
    ordering = ["-last_seen", "-id"]

    def get_serializer_class(self):
        return DeadLetterDetailSerializer if self.action == "retrieve" else DeadLetterSerializer

    @extend_schema(request=DiscardInputSerializer, responses=DiscardOutputSerializer)
    @route(detail=False, methods=["post"])
    def discard(self, request):
        """Discard the selected dead letters (ids, or a filter; an empty filter is refused)."""
        params = DiscardInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        check_class_role(request, data["workload_class"], Role.OPERATOR)
        count = services.dead_letters_discard(
            actor=request.user,
            selection=params.selection(),
            reason=data.get("reason", ""),
            confirm_count=data.get("confirm_count"),
        )
        return Response({"discarded": count})

    @extend_schema(request=EditAndReplayInputSerializer, responses={202: ActionSerializer})
    # The payload is checked by the service, which names the field of a hostile value.
    @route(detail=True, methods=["post"], url_path="edit-and-replay", parser_classes=[PayloadJSONParser])
    def edit_and_replay(self, request, pk=None):
        """Replay this dead letter with a corrected payload; the original payload is kept."""
        params = EditAndReplayInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        action = services.dead_letter_edit_and_replay(
            actor=request.user,
            dead_letter=self.get_object(),
            payload=data["payload"],
            velocity=data.get("velocity"),
            reason=data.get("reason", ""),
            expected_version=data.get("edit_version"),
        )
        return Response(ActionSerializer(action).data, status=status.HTTP_202_ACCEPTED)


# --- Groups ---------------------------------------------------------------------------------------------
class DeadLetterGroupSerializer(serializers.Serializer):
    workload_class = serializers.CharField()
    error_signature = serializers.CharField()
    error_type = serializers.CharField()
    sample_error_message = serializers.CharField()
    count = serializers.IntegerField()
    new_count = serializers.IntegerField()
    held_count = serializers.IntegerField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    trend = serializers.ListField(
        child=serializers.IntegerField(),
        help_text=f"Dead letters last seen in each of the past {TREND_HOURS} hours (UTC), oldest first.",
    )


class DeadLetterGroupListView(generics.GenericAPIView):
    """Dead letters grouped by class and error signature, most recent first, with counts and a
    24-hour trend. Takes the dead-letter list's filters."""

    read_role = Role.VIEWER
    environment_lookup = "workload_class__environment"
    queryset = DeadLetter.objects.all()
    filterset_class = DeadLetterFilterSet
    serializer_class = DeadLetterGroupSerializer

    @extend_schema(responses=DeadLetterGroupSerializer(many=True))
    def get(self, request):
        rows = self.filter_queryset(self.get_queryset())
        groups = dead_letter_groups(now=timezone.now(), rows=rows)
        page = self.paginate_queryset(groups)
        return self.get_paginated_response(DeadLetterGroupSerializer(page, many=True).data)

    # Only the field filters: search and ordering apply to rows, not to groups.
    filter_backends = [EnvironmentVisibilityFilterBackend, ChoiceListingFilterBackend]


class ClassAttentionSerializer(serializers.Serializer):
    workload_class = serializers.CharField()
    needs_attention = serializers.IntegerField(help_text="Dead letters new or held for a person.")
    new = serializers.IntegerField()
    held = serializers.IntegerField()
    trend = serializers.ListField(
        child=serializers.IntegerField(),
        help_text=f"Dead letters (any status) last seen in each of the past {TREND_HOURS} hours (UTC), oldest first.",
    )


class DeadLetterAttentionSerializer(serializers.Serializer):
    needs_attention = serializers.IntegerField(help_text="The fleet's total: what the navigation shows.")
    classes = ClassAttentionSerializer(many=True)


class DeadLetterAttentionView(APIView):
    """What the fleet overview's dead-letter column and the navigation show: per class, the dead
    letters that need a person (new or held, from the mirror; the dead-letter subscription's own
    backlog is drained by the sync) with a 24-hour trend, most first, and the fleet's total."""

    read_role = Role.VIEWER

    @extend_schema(responses=DeadLetterAttentionSerializer)
    def get(self, request):
        attention = dead_letter_attention(now=timezone.now())
        slugs = dict(WorkloadClass.objects.filter(pk__in=list(attention)).values_list("pk", "slug"))
        classes = sorted(
            (
                {"workload_class": slugs[pk], **vars(item), "trend": list(item.trend)}
                for pk, item in attention.items()
                if pk in slugs
            ),
            key=lambda item: (-item["needs_attention"], item["workload_class"]),
        )
        body = {"needs_attention": sum(item["needs_attention"] for item in classes), "classes": classes}
        return Response(DeadLetterAttentionSerializer(body).data)


# --- Replays --------------------------------------------------------------------------------------------
class ReplayInputSerializer(SelectionSerializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=120)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    velocity = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text=f"Messages per second, {services.MIN_REPLAY_VELOCITY} to {services.MAX_REPLAY_VELOCITY:g} "
        f"(default {services.DEFAULT_REPLAY_VELOCITY:g}).",
    )
    dry_run = serializers.BooleanField(default=False, help_text="Plan only: publish nothing, create nothing.")
    confirm_count = serializers.IntegerField(required=False, min_value=0, help_text=CONFIRM_COUNT_HELP)


class ReplayPreviewSerializer(serializers.Serializer):
    matching = serializers.IntegerField()
    replayable = serializers.IntegerField()
    refused_loop_guard = serializers.IntegerField()
    refused_truncated = serializers.IntegerField()
    refused_discarded = serializers.IntegerField()
    selects_whole_class = serializers.BooleanField(
        help_text="Every dead letter of the class in the selected statuses matches this filter."
    )
    confirm_count = serializers.IntegerField(
        allow_null=True, help_text="The confirm_count a replay of this selection needs; null when it needs none."
    )
    other_subscriptions = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Subscriptions on the class topic besides the worker subscription: each receives the replay too.",
    )
    other_subscriptions_error = serializers.CharField(
        required=False, help_text="Why the topic's subscriptions could not be listed (empty when they were)."
    )


def preview_body(selection, preview, audience=None) -> dict:
    count = services.count_to_confirm(selection=selection, preview=preview, count=preview.replayable)
    body = {**preview.__dict__, "confirm_count": count}
    if audience is not None:
        body |= {"other_subscriptions": audience.other_subscriptions, "other_subscriptions_error": audience.error}
    return body


class DryRunItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    message_id = serializers.CharField()
    error_signature = serializers.CharField()
    replay_count = serializers.IntegerField()
    refusal = serializers.CharField(help_text="Why it would not be replayed; empty when it would.")
    attributes = serializers.DictField(child=serializers.CharField(), help_text="What it would be published with.")


class DryRunSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    preview = ReplayPreviewSerializer()
    items = DryRunItemSerializer(many=True, help_text="The first 50 in replay order.")


class ReplayFilter(django_filters.FilterSet):
    workload_class = django_filters.CharFilter(field_name="workload_class__slug")
    environment = environment_filter("workload_class__environment")

    class Meta:
        model = Action
        fields = ["state"]


class ReplayViewSet(
    ReplayOutcomesOnListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Named replays of dead letters back to their class's topic, with progress and cancel.

    Create one with a selection (`ids`) or a filter (signature, type, time range); an empty filter
    is refused, and one that selects many dead letters, or all of the class's, needs `confirm_count`
    naming how many (the preview says which). `dry_run: true` reports what would be replayed and
    publishes nothing. Messages already replayed as often as the class's `replay_limit` allows are
    refused (loop guard)."""

    serializer_class = ActionSerializer
    queryset = Action.objects.filter(kind=ActionKind.REPLAY).select_related("workload_class")
    read_role = Role.VIEWER
    write_role = Role.OPERATOR
    class_in_request = True  # each changing route checks the role in its class's environment
    environment_lookup = "workload_class__environment"
    filterset_class = ReplayFilter
    search_fields = ["name", "reason", "requested_by_label"]
    ordering_fields = ["created_at", "finished_at", "state"]
    ordering = ["-created_at", "-id"]

    @extend_schema(request=ReplayInputSerializer, responses={200: DryRunSerializer, 202: ActionSerializer})
    def create(self, request, *args, **kwargs):
        params = ReplayInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        check_class_role(request, data["workload_class"], Role.OPERATOR)
        if data["dry_run"]:
            selection = params.selection()
            dry = services.replay_dry_run(selection=selection)
            body = {
                "dry_run": True,
                "preview": preview_body(selection, dry.preview),
                "items": [i.__dict__ for i in dry.items],
            }
            return Response(DryRunSerializer(body).data)
        action = services.replay_request(
            actor=request.user,
            selection=params.selection(),
            velocity=data.get("velocity"),
            name=data.get("name", ""),
            reason=data.get("reason", ""),
            confirm_count=data.get("confirm_count"),
        )
        return Response(ActionSerializer(action).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=SelectionSerializer, responses=ReplayPreviewSerializer)
    @route(detail=False, methods=["post"])
    def preview(self, request):
        """How many dead letters a replay of this selection would publish, how many it would refuse,
        and which other subscriptions on the class topic would receive it too."""
        params = SelectionSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        check_class_role(request, params.validated_data["workload_class"], Role.OPERATOR)
        selection = params.selection()
        preview = services.replay_preview(selection=selection)
        audience = services.replay_audience(workload_class=selection.workload_class)
        return Response(ReplayPreviewSerializer(preview_body(selection, preview, audience)).data)

    @extend_schema(request=None, responses=ActionSerializer)
    @route(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Stop the replay after the message in flight; replayed messages stay replayed."""
        return Response(ActionSerializer(action_cancel(action=self.get_object(), actor=request.user)).data)


# --- Triage rules ---------------------------------------------------------------------------------------
class TriageRuleSerializer(StrictModelSerializer):
    workload_class = serializers.SlugRelatedField(
        slug_field="slug", queryset=WorkloadClass.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = TriageRule
        fields = [
            "id",
            *TriageRule.EDITABLE_FIELDS,
            "last_applied_at",
            "created_by_label",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "last_applied_at", "created_by_label", "created_at", "updated_at"]


class TriageRuleViewSet(viewsets.ModelViewSet):
    """Rules that replay (after a delay), discard or hold new dead letters; a beat task runs them."""

    serializer_class = TriageRuleSerializer
    queryset = TriageRule.objects.select_related("workload_class")
    read_role = Role.VIEWER
    write_role = Role.OPERATOR
    filterset_fields = ["action", "enabled"]
    search_fields = ["name", "error_signature", "attribute_pattern"]
    ordering_fields = ["priority", "name", "created_at"]
    ordering = ["priority", "id"]

    def perform_create(self, serializer):
        serializer.instance = triage_services.triage_rule_create(
            actor=self.request.user, fields=serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = triage_services.triage_rule_update(
            actor=self.request.user, rule=serializer.instance, fields=serializer.validated_data
        )

    def perform_destroy(self, instance):
        triage_services.triage_rule_delete(actor=self.request.user, rule=instance)
