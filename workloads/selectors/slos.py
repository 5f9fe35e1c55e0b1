"""SLO cards and alerts as the screens and the API read them: each SLO's latest status snapshot,
its budget, its open alerts."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from django.db.models import QuerySet

from workloads.models import (
    Slo,
    SloAlert,
    SloKind,
    SloStatus,
)
from workloads.notifications.runbooks import runbook_url

AT_RISK_BUDGET_PERCENT = 25.0


def status_of(slo: Slo) -> SloStatus | None:
    try:
        return slo.status
    except SloStatus.DoesNotExist:
        return None


@dataclass
class SloCard:
    """What every screen and endpoint shows of one SLO; built by `slo_cards` only."""

    slo: Slo
    status: SloStatus | None  # None until the evaluation tick has run once
    active_alerts: int = 0  # burn-rate alerts open now

    @property
    def attainment_percent(self) -> float | None:
        if self.status is None or self.status.attainment is None:
            return None
        return self.status.attainment * 100

    @property
    def attempt_failure_percent(self) -> float | None:
        """Failed attempts per 100 attempts over the window (its own figure, beside the SLO)."""
        if self.status is None or self.status.attempt_failure_ratio is None:
            return None
        return self.status.attempt_failure_ratio * 100

    @property
    def budget_remaining_percent(self) -> float | None:
        return None if self.status is None else self.status.budget_remaining_percent

    @property
    def burn_rates(self) -> dict[str, float]:
        if self.status is None:
            return {}
        return {label: w["burn_rate"] for label, w in self.status.windows.items()}

    @property
    def unit(self) -> str:
        return "minutes" if self.slo.kind == SloKind.QUEUE_AGE else "events"

    @property
    def runbook_url(self) -> str:
        return runbook_url(self.slo)


def slo_queryset() -> QuerySet[Slo]:
    return Slo.objects.select_related("workload_class", "status").order_by("workload_class__slug", "kind")


def active_alert_counts(*, slo_ids: list[int]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for slo_id in SloAlert.objects.filter(slo_id__in=slo_ids, resolved_at__isnull=True).values_list(
        "slo_id", flat=True
    ):
        counts[slo_id] += 1
    return counts


def slo_cards(slos, *, open_alerts: list[SloAlert] | None = None) -> list[SloCard]:
    """The cards of these SLOs (with `status` selected): the last evaluation and the alerts open
    now. The one place an SLO's card is assembled, so the SLO list, a class's error budget, its
    page and the fleet answer the same (one query for the alerts, whatever the number of SLOs;
    none when the caller already loaded the open alerts of these SLOs, as `open_alerts`)."""
    slos = list(slos)
    if open_alerts is None:
        active = active_alert_counts(slo_ids=[slo.pk for slo in slos])
    else:
        active = Counter(alert.slo_id for alert in open_alerts if alert.resolved_at is None)
    return [SloCard(slo=slo, status=status_of(slo), active_alerts=active.get(slo.pk, 0)) for slo in slos]


def alert_queryset(*, state: str = "all") -> QuerySet[SloAlert]:
    alerts = SloAlert.objects.select_related("slo__workload_class", "incident")
    if state == "active":
        alerts = alerts.filter(resolved_at__isnull=True)
    elif state == "resolved":
        alerts = alerts.filter(resolved_at__isnull=False)
    return alerts.order_by("-opened_at", "-id")
