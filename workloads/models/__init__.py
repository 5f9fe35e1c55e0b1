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
from workloads.models.tokens import ApiToken

__all__ = [
    "Action",
    "ActionKind",
    "ActionState",
    "ActionStep",
    "StepState",
    "TIMEOUT_TIER_SECONDS",
    "ApiToken",
    "AuditEvent",
    "AuditResult",
    "CostRates",
    "SchedulePolicy",
    "ScheduleKind",
    "Slo",
    "SloKind",
    "Tier",
    "TimeoutTier",
    "WorkloadClass",
]
