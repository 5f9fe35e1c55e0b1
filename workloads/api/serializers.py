"""Serializers parse and shape JSON only; the rules live on the models and in services."""

from django.contrib.auth import get_user_model
from rest_framework import serializers

from workloads.api.choices import ChoiceField
from workloads.models import (
    ApiToken,
    AuditEvent,
    CostRates,
    Environment,
    SchedulePolicy,
    Slo,
    TimeDisplay,
    WorkloadClass,
)


class StrictFieldsMixin:
    """Reject unknown fields instead of silently ignoring them (a typo like `max_instance` must
    not look like success). Read-only fields are tolerated so GET output can be PUT back."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class StrictModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    # Model fields with choices: a refused value names the valid ones.
    serializer_choice_field = ChoiceField


class StrictSerializer(StrictFieldsMixin, serializers.Serializer):
    pass


class SloSerializer(StrictModelSerializer):
    error_budget_percent = serializers.SerializerMethodField()

    class Meta:
        model = Slo
        fields = [
            "id",
            "kind",
            "percentile",
            "threshold_seconds",
            "target_percent",
            "window_days",
            "min_traffic",
            "runbook_url",
            "error_budget_percent",
        ]
        read_only_fields = ["id"]

    def get_error_budget_percent(self, slo: Slo) -> float:
        return round(100 - float(slo.target_percent), 6)


class SchedulePolicySerializer(StrictModelSerializer):
    class Meta:
        model = SchedulePolicy
        fields = [
            "id",
            "name",
            "kind",
            "days_of_week",
            "start_time",
            "end_time",
            "timezone",
            "min_instances",
            "max_instances",
            "priority",
            "enabled",
        ]
        read_only_fields = ["id"]


class WorkloadClassSerializer(StrictModelSerializer):
    slos = SloSerializer(many=True, required=False)
    schedules = SchedulePolicySerializer(many=True, required=False)
    cost_rates = serializers.SlugRelatedField(
        slug_field="name", queryset=CostRates.objects.all(), required=False, allow_null=True
    )
    environment = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Environment.objects.all(),
        required=False,
        help_text="The environment's slug (default: DEFAULT_ENVIRONMENT). Its projects and regions bound "
        "the class's resource names, which default to its first project and region.",
    )
    timeout_effective_seconds = serializers.SerializerMethodField()
    ack_deadline_seconds = serializers.IntegerField(read_only=True)
    provisioning_action = serializers.SerializerMethodField(
        help_text="On create, and on a change of what lives in the cloud: the id of the action that "
        "provisions the class's topics, subscriptions and pool (follow it at /api/v1/actions/<id>/); "
        "null otherwise."
    )

    class Meta:
        model = WorkloadClass
        fields = [
            "id",
            "slug",
            "name",
            "owner_team",
            "description",
            "tier",
            "environment",
            "runbook_url",
            "runtime",
            "runtime_resource",
            "control_webhook_url",
            "timeout_tier",
            "timeout_seconds",
            "timeout_effective_seconds",
            "ack_deadline_seconds",
            "max_concurrency",
            "max_delivery_attempts",
            "min_backoff_seconds",
            "max_backoff_seconds",
            "backoff_jitter",
            "replay_limit",
            "payload_schema",
            "schema_version",
            "idempotency_key_template",
            "dedup_ttl_seconds",
            "ordering_key_template",
            "min_instances",
            "max_instances",
            "throughput_per_instance",
            "drain_target_seconds",
            "vcpu_per_instance",
            "memory_gib_per_instance",
            "cost_rates",
            "shed_load_when_paused",
            "topic",
            "subscription",
            "dead_letter_topic",
            "dead_letter_subscription",
            "completion_topic",
            "worker_pool",
            "message_retention_seconds",
            "slos",
            "schedules",
            "provisioning_action",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def get_timeout_effective_seconds(self, workload_class: WorkloadClass) -> int:
        return int(workload_class.timeout.total_seconds())

    def get_provisioning_action(self, workload_class: WorkloadClass) -> int | None:
        action = getattr(workload_class, "provisioning_action", None)  # set by the create/update service
        return action.pk if action is not None else None


class CostRatesSerializer(StrictModelSerializer):
    class Meta:
        model = CostRates
        fields = [
            "id",
            "name",
            "description",
            "currency",
            "vcpu_second",
            "gib_second",
            "per_record",
            "per_1k_tokens",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class AuditEventSerializer(serializers.ModelSerializer):
    token = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "occurred_at",
            "actor_label",
            "token",
            "via",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "workload_class_slug",
            "changes",
            "result",
            "source_ip",
            "request_id",
            "extra",
        ]
        read_only_fields = fields


class ApiTokenSerializer(StrictModelSerializer):
    user = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        required=False,
        help_text="The user the token acts as (and whose role it has). Defaults to you.",
    )
    scopes = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="'*' (default: all the user may do), 'read', 'ingest:*' or 'ingest:<class-slug>'.",
    )
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    prefix = serializers.SerializerMethodField()
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "user",
            "scopes",
            "prefix",
            "active",
            "created_by",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = ["id", "created_by", "created_at", "last_used_at", "revoked_at"]

    def get_prefix(self, token: ApiToken) -> str:
        return f"cpt_{token.key_id}_"


class IssuedTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The token itself: shown this once, store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.CharField()
    token = serializers.CharField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField())
    time_display = ChoiceField(choices=TimeDisplay.choices)


class MePreferencesSerializer(StrictSerializer):
    time_display = ChoiceField(choices=TimeDisplay.choices)
