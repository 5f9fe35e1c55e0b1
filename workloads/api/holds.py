"""REST API v1: what incident mode and a class's pause share: expiry and extension inputs, the
actions they start and the holds they put on pools."""

from datetime import timedelta

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from workloads.api.choices import ChoiceField
from workloads.models import (
    PoolHold,
    RestoreRule,
)


def minutes_delta(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(minutes=value)


class ExpiryInputSerializer(serializers.Serializer):
    expires_in_minutes = serializers.IntegerField(
        required=False,
        min_value=5,
        max_value=7 * 24 * 60,
        help_text="Minutes from now until it ends by itself. Default: INCIDENT_DEFAULT_EXPIRY_MINUTES (4 h).",
    )


class ExtendInputSerializer(serializers.Serializer):
    expires_in_minutes = serializers.IntegerField(
        min_value=5, max_value=7 * 24 * 60, help_text="The new expiry, in minutes from now."
    )


# --- Output shapes ------------------------------------------------------------------------------------------
class ActionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    state = serializers.CharField()
    progress_done = serializers.IntegerField()
    progress_failed = serializers.IntegerField()
    progress_total = serializers.IntegerField()
    error = serializers.CharField()


class BoundsSerializer(serializers.Serializer):
    min = serializers.IntegerField()
    max = serializers.IntegerField()
    source = serializers.CharField(help_text="'baseline' or the schedule window's name.")


class PoolHoldSerializer(serializers.ModelSerializer):
    workload_class = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    # Declared: a read-only model field loses allow_blank, and "" (not restored yet) is a value.
    restore_rule = ChoiceField(choices=RestoreRule.choices, allow_blank=True, read_only=True)
    bounds_when_paused = serializers.SerializerMethodField()
    pause_action = ActionRefSerializer(allow_null=True)
    restore_action = ActionRefSerializer(allow_null=True)

    class Meta:
        model = PoolHold
        fields = [
            "id",
            "workload_class",
            "incident",
            "state",
            "hold_count",
            "reason",
            "expires_at",
            "previous_count",
            "paused_at",
            "bounds_when_paused",
            "restored_count",
            "restore_rule",
            "restore_detail",
            "last_error",
            "retention_warning",
            "created_by_label",
            "created_at",
            "ended_by_label",
            "ended_at",
            "pause_action",
            "restore_action",
        ]
        read_only_fields = fields

    @extend_schema_field(BoundsSerializer)
    def get_bounds_when_paused(self, hold: PoolHold) -> dict:
        return {"min": hold.bounds_min, "max": hold.bounds_max, "source": hold.bounds_source}
