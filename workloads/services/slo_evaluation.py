"""SLO evaluation: every SLO's status (attainment and error budget over its window, burn rate per
alert window), burn-rate alerts opened and resolved, and the incidents that follow them.

Safe to run twice or late: alert state only moves when the numbers say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Q, Sum

from workloads.domain import slo as slo_math
from workloads.domain.windows import floor_minute, window_spans
from workloads.models import DeadLetter, DeadLetterStatus, MetricRollup, Slo, SloAlert, SloKind, SloStatus
from workloads.selectors.rollups import minutes_kept_since, spans_query
from workloads.services.alert_incidents import SyncSummary, incidents_sync
from workloads.services.slo_thresholds import slo_thresholds_sync

logger = logging.getLogger(__name__)


_EVENT_COLUMNS = ("completed", "failed", "latency_good", "latency_count", "queue_age_good", "queue_age_minutes")


def _dead_lettered_work(*, class_ids: list[int], starts: dict[str, datetime], end: datetime) -> dict[int, dict]:
    """Units of work whose final outcome is dead-lettered, per class and window: rows of the
    dead-letter mirror last seen in [start, end). A replay that failed again is the same row, so
    the work counts once, at its last failure; a replayed row not back (yet) is not a failure, its
    completion counts as good. Pub/Sub's own forwards (a worker that crashed) count too."""
    rows = DeadLetter.objects.filter(
        workload_class_id__in=class_ids, last_seen__gte=min(starts.values()), last_seen__lt=end
    ).exclude(status=DeadLetterStatus.REPLAYED)
    aggregates = {
        f"{window}_dead_lettered": Count("pk", filter=Q(last_seen__gte=start)) for window, start in starts.items()
    }
    return {row["workload_class_id"]: row for row in rows.order_by().values("workload_class_id").annotate(**aggregates)}


def slo_events(slo: Slo, sums: dict, window: str) -> slo_math.Events:
    """Good and total events of an SLO in one window, from the per-class sums of the rollups."""

    def total(column: str) -> float:
        return sums.get(f"{window}_{column}") or 0

    if slo.kind == SloKind.SUCCESS_RATIO:
        return slo_math.success_events(total("completed"), total("dead_lettered"))
    if slo.kind == SloKind.COMPLETION_LATENCY:
        return slo_math.Events(good=float(total("latency_good")), total=float(total("latency_count")))
    return slo_math.Events(good=float(total("queue_age_good")), total=float(total("queue_age_minutes")))


@dataclass
class EvaluationSummary:
    slos: int = 0
    opened: list[SloAlert] = field(default_factory=list)
    resolved: list[SloAlert] = field(default_factory=list)
    rejudged_classes: list[int] = field(default_factory=list)
    incidents: SyncSummary | None = None


def slo_alerts_evaluate(*, now: datetime) -> EvaluationSummary:
    """Recompute every SLO's status (attainment and budget over its window, burn rate per alert
    window) and open or resolve burn-rate alerts.

    One SQL query sums every window for every class: whole hours come from hourly rollups, the
    ragged edges from minute rollups, so the work grows with classes and hours, not with traffic."""
    summary = EvaluationSummary(rejudged_classes=slo_thresholds_sync())
    slos = list(Slo.objects.select_related("workload_class").order_by("pk"))
    if not slos:
        with transaction.atomic():  # no SLO to judge, but dead letters may still be at risk
            summary.incidents = incidents_sync(now=now)
        return summary
    end = floor_minute(now)
    kept_since = minutes_kept_since(now)
    windows = {
        f"w{s}": window_spans(end - timedelta(seconds=s), end, minutes_kept_since=kept_since)
        for s in slo_math.ALERT_WINDOWS
    }
    windows |= {
        f"d{days}": window_spans(end - timedelta(days=days), end, minutes_kept_since=kept_since)
        for days in {slo.window_days for slo in slos}
    }
    aggregates = {
        f"{window}_{column}": Sum(column, filter=spans_query(spans), default=0)
        for window, spans in windows.items()
        for column in _EVENT_COLUMNS
    }
    class_ids = sorted({slo.workload_class_id for slo in slos})
    sums = {
        row["workload_class_id"]: row
        for row in MetricRollup.objects.filter(
            spans_query({span for spans in windows.values() for span in spans}), workload_class_id__in=class_ids
        )
        .order_by()
        .values("workload_class_id")
        .annotate(**aggregates)
    }

    starts = {f"w{s}": end - timedelta(seconds=s) for s in slo_math.ALERT_WINDOWS}
    starts |= {f"d{days}": end - timedelta(days=days) for days in {slo.window_days for slo in slos}}
    for class_id, counts in _dead_lettered_work(class_ids=class_ids, starts=starts, end=end).items():
        sums[class_id] = {**sums.get(class_id, {}), **counts}

    open_alerts = {(a.slo_id, a.rule): a for a in SloAlert.objects.filter(resolved_at__isnull=True)}
    statuses, new_alerts, changed_alerts = [], [], []
    for slo in slos:
        class_sums = sums.get(slo.workload_class_id, {})
        budget = slo_math.budget_fraction(slo.target_percent)
        window_events = {s: slo_events(slo, class_sums, f"w{s}") for s in slo_math.ALERT_WINDOWS}
        status = slo_math.error_budget(
            slo_events(slo, class_sums, f"d{slo.window_days}"),
            budget=budget,
            window_seconds=slo.window_days * 86400,
            current_burn_rate=slo_math.burn_rate(window_events[3600], budget),
        )
        statuses.append(
            SloStatus(
                slo=slo,
                evaluated_at=now,
                window_start=end - timedelta(days=slo.window_days),
                good=status.good,
                total=status.total,
                attainment=status.attainment,
                met=status.met,
                budget_allowed=status.allowed,
                budget_consumed=status.consumed,
                budget_remaining=status.remaining,
                budget_remaining_percent=status.remaining_fraction * 100,
                exhaustion_seconds=status.exhaustion_seconds,
                guarded=[],
                attempt_failure_ratio=slo_math.attempt_failure_ratio(
                    class_sums.get(f"d{slo.window_days}_completed") or 0,
                    class_sums.get(f"d{slo.window_days}_failed") or 0,
                ),
                windows={
                    slo_math.window_label(seconds): {
                        "good": events.good,
                        "total": events.total,
                        "burn_rate": slo_math.burn_rate(events, budget),
                    }
                    for seconds, events in window_events.items()
                },
            )
        )
        for rule in slo_math.BURN_RULES:
            alert = open_alerts.get((slo.pk, rule.name))
            verdict = slo_math.evaluate_rule(
                rule, window_events, budget=budget, min_traffic=slo.min_traffic, is_open=alert is not None
            )
            if alert is None and verdict.guarded and min(verdict.long_burn_rate, verdict.short_burn_rate) > rule.factor:
                # Burning fast enough to fire, held back by the low-traffic guard: say so.
                statuses[-1].guarded.append(
                    {
                        "rule": rule.name,
                        "severity": rule.severity,
                        "events": verdict.long_total,
                        "min_traffic": slo.min_traffic,
                        "window": slo_math.window_label(rule.long_window),
                        "burn_rate": verdict.short_burn_rate,
                    }
                )
            if alert is None and verdict.firing:
                alert = SloAlert(
                    slo=slo,
                    rule=rule.name,
                    severity=rule.severity,
                    factor=rule.factor,
                    long_window_seconds=rule.long_window,
                    short_window_seconds=rule.short_window,
                    opened_at=now,
                    opened_long_burn_rate=verdict.long_burn_rate,
                    opened_short_burn_rate=verdict.short_burn_rate,
                    last_long_burn_rate=verdict.long_burn_rate,
                    last_short_burn_rate=verdict.short_burn_rate,
                    peak_short_burn_rate=verdict.short_burn_rate,
                    last_evaluated_at=now,
                )
                new_alerts.append(alert)
                logger.warning("SLO alert opened: %s %s (burn %.1fx)", slo, rule.name, verdict.short_burn_rate)
            elif alert is not None:
                alert.last_long_burn_rate = verdict.long_burn_rate
                alert.last_short_burn_rate = verdict.short_burn_rate
                alert.peak_short_burn_rate = max(alert.peak_short_burn_rate, verdict.short_burn_rate)
                alert.last_evaluated_at = now
                if not verdict.firing:
                    alert.resolved_at = now
                    summary.resolved.append(alert)
                    logger.warning("SLO alert resolved: %s %s", slo, rule.name)
                changed_alerts.append(alert)

    with transaction.atomic():
        SloStatus.objects.bulk_create(
            statuses,
            update_conflicts=True,
            unique_fields=["slo"],
            update_fields=[f.name for f in SloStatus._meta.concrete_fields if f.name != "slo"],
        )
        SloAlert.objects.bulk_create(new_alerts)
        SloAlert.objects.bulk_update(
            changed_alerts,
            ["last_long_burn_rate", "last_short_burn_rate", "peak_short_burn_rate", "last_evaluated_at", "resolved_at"],
        )
        # One incident per SLO, and its notifications, in the same transaction (the outbox).
        summary.incidents = incidents_sync(now=now)
    summary.slos = len(slos)
    summary.opened = new_alerts
    return summary
