"""Actions: every change made to the cloud, with progress and per-target results."""

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action as route
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from controlplane.roles import Role
from workloads.api.choices import ChoiceField
from workloads.api.filters import IsoDateTimeFilter, environment_filter
from workloads.models import Action, ActionStep
from workloads.selectors.replays import attach_replay_outcomes, replay_outcome
from workloads.services.actions import action_cancel


class ActionStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = ActionStep
        fields = ["position", "key", "state", "result", "error", "finished_at"]
        read_only_fields = fields


class ReplayOutcomeSerializer(serializers.Serializer):
    published = serializers.IntegerField(help_text="Messages this replay published.")
    completed = serializers.IntegerField(help_text="... that a worker then completed.")
    dead_lettered_again = serializers.IntegerField(help_text="... that reached the dead-letter topic again.")
    pending = serializers.IntegerField(help_text="... with no outcome yet (queued, in progress or retrying).")
    replayed_again = serializers.IntegerField(help_text="... that a later replay published again (counted there).")
    tone = ChoiceField(
        choices=["ok", "warn", "bad", "pending"],
        help_text="bad: every message with an outcome came back; warn: some did; ok: all completed.",
    )
    summary = serializers.CharField(help_text='E.g. "34 published, 34 dead-lettered again".')


class ActionSerializer(serializers.ModelSerializer):
    workload_class = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    percent_done = serializers.IntegerField(read_only=True)
    is_final = serializers.BooleanField(read_only=True)
    replay_outcome = serializers.SerializerMethodField(
        help_text="Replays only (null otherwise): what the published messages did afterwards."
    )

    class Meta:
        model = Action
        fields = [
            "id",
            "kind",
            "name",
            "workload_class",
            "target",
            "parameters",
            "reason",
            "requested_by_label",
            "state",
            "progress_done",
            "progress_failed",
            "progress_total",
            "percent_done",
            "is_final",
            "error",
            "result",
            "replay_outcome",
            "cancel_requested",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "not_before",
        ]
        read_only_fields = fields

    @extend_schema_field(ReplayOutcomeSerializer(allow_null=True))
    def get_replay_outcome(self, action: Action) -> dict | None:
        outcome = getattr(action, "replay_outcome", None) or replay_outcome(action)
        return outcome.as_dict() if outcome is not None else None


class ActionFilter(django_filters.FilterSet):
    workload_class = django_filters.CharFilter(field_name="workload_class__slug")
    environment = environment_filter("workload_class__environment")
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Action
        fields = ["kind", "state"]


class ReplayOutcomesOnListMixin:
    """A list of actions reads the outcomes of every replay on the page in one query, not one per row."""

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        if page is not None and self.action == "list":  # other routes may page steps, not actions
            attach_replay_outcomes(page)
        return page


class ActionViewSet(
    ReplayOutcomesOnListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Every action with its state and progress. Operators may cancel one that has not ended."""

    serializer_class = ActionSerializer
    queryset = Action.objects.select_related("workload_class")
    read_role = Role.VIEWER
    write_role = Role.OPERATOR
    environment_lookup = "workload_class__environment"
    filterset_class = ActionFilter
    search_fields = ["name", "target", "reason", "requested_by_label"]
    ordering_fields = ["created_at", "finished_at", "state", "kind"]
    ordering = ["-created_at", "-id"]

    @extend_schema(request=None, responses=ActionSerializer)
    @route(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Ask a pending or running action to stop; finished steps stay done."""
        cancelled = action_cancel(action=self.get_object(), actor=request.user)
        return Response(ActionSerializer(cancelled).data)

    @extend_schema(responses=ActionStepSerializer(many=True))
    @route(detail=True, methods=["get"])
    def steps(self, request, pk=None):
        """The action's steps (one per target), paginated, filterable by `state`."""
        # Not get_object(): the list filters (e.g. ?state=) must not apply to the action itself.
        parent = get_object_or_404(self.get_queryset(), pk=pk)
        steps = ActionStep.objects.filter(action=parent).order_by("position")
        state = request.query_params.get("state")
        if state:
            steps = steps.filter(state=state)
        page = self.paginate_queryset(steps)
        return self.get_paginated_response(ActionStepSerializer(page, many=True).data)
