from workloads.models.actions import Action, ActionKind, ActionState, ActionStep, StepState
from workloads.models.audit import AuditEvent, AuditResult
from workloads.models.classes import (
    TIMEOUT_TIER_SECONDS,
    CostRates,
    ScheduleKind,
    SchedulePolicy,
    Slo,
    SloKind,
    Tier,
    TimeoutTier,
    WorkloadClass,
)
from workloads.models.telemetry import (
    AlertSeverity,
    ClassTelemetry,
    MetricRollup,
    PollRun,
    Resolution,
    SloAlert,
    SloStatus,
)
from workloads.models.tokens import ApiToken

__all__ = [
    "Action",
    "ActionKind",
    "ActionState",
    "ActionStep",
    "StepState",
    "TIMEOUT_TIER_SECONDS",
    "AlertSeverity",
    "ApiToken",
    "AuditEvent",
    "AuditResult",
    "ClassTelemetry",
    "CostRates",
    "MetricRollup",
    "PollRun",
    "Resolution",
    "SchedulePolicy",
    "ScheduleKind",
    "Slo",
    "SloAlert",
    "SloStatus",
    "SloKind",
    "Tier",
    "TimeoutTier",
    "WorkloadClass",
]
