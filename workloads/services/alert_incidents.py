"""One incident per SLO, and the notification outbox it writes.

`incidents_sync` runs inside the SLO evaluation's transaction, after the alerts were written: it
compares each SLO's open alerts with its open incident and records what changed (opened, severity
changed, resolved). Every change bumps the incident's `sequence` and writes one Notification per
channel in the same transaction, so a change is either fully recorded with its notifications or
not at all, and re-running the evaluation on unchanged numbers finds nothing to record.

Acknowledging and silencing are here too: both stop further notifications for what they cover
(the rows are still written, marked suppressed or silenced, so the log says why nothing was sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from workloads.domain.dead_letters import retention_risk
from workloads.errors import ApplicationError
from workloads.models import (
    ClassTelemetry,
    IncidentKind,
    Notification,
    NotificationChannel,
    NotificationEvent,
    NotificationRoute,
    NotificationState,
    PoolControl,
    PoolHealth,
    Silence,
    Slo,
    SloAlert,
    SloIncident,
    WorkloadClass,
)
from workloads.services.audit import audit_event_record
from workloads.services.incident_context import incident_context

SEVERITY_RANK = {"page": 2, "ticket": 1}
BUSINESS_HOURS = (9, 17)  # Monday to Friday, in the route's time zone


# --- Matching: routes and silences ----------------------------------------------------------------------
@dataclass(frozen=True)
class IncidentLabels:
    owner_team: str
    tier: str
    workload_class_slug: str
    slo_kind: str
    severity: str

    @classmethod
    def of(cls, incident: SloIncident) -> IncidentLabels:
        wc = incident.subject_class
        kind = incident.slo.kind if incident.slo_id else incident.kind
        return cls(wc.owner_team, wc.tier, wc.slug, kind, incident.severity)


MATCHER_FIELDS = ("owner_team", "tier", "workload_class_slug", "slo_kind", "severity")


def matches(matcher, labels: IncidentLabels) -> bool:
    """A route or silence matches when each of its non-empty matchers equals the label."""
    return all(not getattr(matcher, name) or getattr(matcher, name) == getattr(labels, name) for name in MATCHER_FIELDS)


def route_for(labels: IncidentLabels) -> NotificationRoute | None:
    """The first matching route in order, the default route last; None when nothing matches."""
    for route in NotificationRoute.objects.prefetch_related("channels").order_by("is_default", "order", "id"):
        if matches(route, labels):
            return route
    return None


def active_silences(now: datetime) -> list[Silence]:
    return list(Silence.objects.filter(ended_at__isnull=True, starts_at__lte=now, expires_at__gt=now))


def silence_for(labels: IncidentLabels, now: datetime) -> Silence | None:
    return next((s for s in active_silences(now) if matches(s, labels)), None)


def next_business_time(moment: datetime, tz_name: str) -> datetime:
    """`moment` if it falls in business hours in the zone, else the start of the next ones."""
    local = moment.astimezone(ZoneInfo(tz_name))
    start, end = BUSINESS_HOURS
    if local.weekday() < 5 and start <= local.hour < end:
        return moment
    day = local if local.hour < start else local + timedelta(days=1)
    day = day.replace(hour=start, minute=0, second=0, microsecond=0)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


# --- The outbox ------------------------------------------------------------------------------------------
def _record_change(incident: SloIncident, *, event: str, now: datetime, alerts: list[SloAlert]) -> list[Notification]:
    """Bump the incident's sequence and write one notification per channel for this change.

    An opening or a severity change goes to the route's channels for the incident as it is now,
    plus every channel that already heard of it (a page after a ticket reaches the pager; the
    ticket channel hears the change). An acknowledge or a resolve goes only to the channels that
    heard of the incident (a silenced opening told no one, so its resolve tells no one either),
    even if the severity, and so the route, changed since."""
    incident.sequence += 1
    incident.save(
        update_fields=["sequence", "severity", "resolved_at", "acknowledged_at", "dead_letter_oldest_age_seconds"]
    )
    labels = IncidentLabels.of(incident)
    route = route_for(labels)
    channels = {}
    if event in (NotificationEvent.TRIGGER, NotificationEvent.UPDATE):
        channels = {channel.pk: channel for channel in (route.channels.all() if route else []) if channel.enabled}
    for channel in _channels_that_heard(incident):
        channels.setdefault(channel.pk, channel)
    silence = silence_for(labels, now)
    context = incident_context(incident, event=event, alerts=alerts)
    rows = []
    for channel in channels.values():
        state, reason, due = NotificationState.PENDING, "", now
        if silence is not None:
            state, reason = NotificationState.SILENCED, f"Silence #{silence.pk}: {silence.reason}"[:255]
        elif event == NotificationEvent.UPDATE and incident.is_acknowledged:
            state, reason = NotificationState.SUPPRESSED, f"Acknowledged by {incident.acknowledged_by_label}"[:255]
        elif route is not None and route.hold_tickets_for_business_hours and incident.severity == "ticket":
            due = next_business_time(now, route.business_hours_timezone)
            if due != now:
                reason = f"Held for business hours ({route.business_hours_timezone})"
        rows.append(
            Notification(
                incident=incident,
                channel=channel,
                route=route,
                event=event,
                sequence=incident.sequence,
                severity=incident.severity,
                context=context,
                state=state,
                state_reason=reason,
                created_at=now,
                next_attempt_at=due,
            )
        )
    # ignore_conflicts: the unique (incident, channel, sequence) makes a racing duplicate a no-op.
    return Notification.objects.bulk_create(rows, ignore_conflicts=True)


def _channels_that_heard(incident: SloIncident) -> list[NotificationChannel]:
    """Enabled channels with a notification of this incident that was not silenced."""
    return list(
        NotificationChannel.objects.filter(
            enabled=True,
            notifications__incident=incident,
            notifications__state__in=[
                NotificationState.PENDING,
                NotificationState.SENT,
                NotificationState.FAILED,
                NotificationState.SUPPRESSED,
            ],
        ).distinct()
    )


def _unheard_and_no_longer_silenced(incident: SloIncident, now: datetime) -> bool:
    """An open incident whose opening was silenced, now that no silence covers it and its route
    has a channel: it opens again for the route (a silence hides an incident only while it lasts)."""
    if Notification.objects.filter(incident=incident).exclude(state=NotificationState.SILENCED).exists():
        return False
    if not Notification.objects.filter(incident=incident, state=NotificationState.SILENCED).exists():
        return False
    labels = IncidentLabels.of(incident)
    route = route_for(labels)
    return route is not None and route.channels.filter(enabled=True).exists() and silence_for(labels, now) is None


def _highest(alerts: list[SloAlert]) -> str:
    return max((a.severity for a in alerts), key=SEVERITY_RANK.__getitem__)


@dataclass
class SyncSummary:
    opened: list[SloIncident]
    updated: list[SloIncident]
    resolved: list[SloIncident]


def incidents_sync(*, now: datetime) -> SyncSummary:
    """Bring each SLO's incident in line with its open alerts. Call inside the transaction that
    wrote the alerts."""
    summary = SyncSummary([], [], [])
    open_alerts: dict[int, list[SloAlert]] = {}
    for alert in SloAlert.objects.filter(resolved_at__isnull=True).order_by("opened_at", "id"):
        open_alerts.setdefault(alert.slo_id, []).append(alert)
    incidents = {
        incident.slo_id: incident
        for incident in SloIncident.objects.select_for_update(of=("self",))
        .filter(resolved_at__isnull=True, kind=IncidentKind.SLO_BURN)
        .select_related("slo__workload_class")
    }
    slos = {
        slo.pk: slo
        for slo in Slo.objects.filter(pk__in=open_alerts.keys() - incidents.keys()).select_related("workload_class")
    }
    for slo_id, alerts in open_alerts.items():
        incident = incidents.get(slo_id)
        severity = _highest(alerts)
        if incident is None:
            first = alerts[0]
            incident = SloIncident.objects.create(
                slo=slos[slo_id],
                key=f"slo-{slo_id}-{int(first.opened_at.timestamp())}",
                severity=severity,
                opened_at=first.opened_at,
            )
            incident.slo = slos[slo_id]
            event = NotificationEvent.TRIGGER
            summary.opened.append(incident)
        elif incident.severity != severity:
            incident.severity = severity
            event = NotificationEvent.UPDATE
            summary.updated.append(incident)
        elif _unheard_and_no_longer_silenced(incident, now):
            event = NotificationEvent.TRIGGER
            summary.updated.append(incident)
        else:
            event = None
        unattached = [alert.pk for alert in alerts if alert.incident_id != incident.pk]
        if unattached:
            SloAlert.objects.filter(pk__in=unattached).update(incident=incident)
        if event is not None:
            _record_change(incident, event=event, now=now, alerts=alerts)
    for slo_id, incident in incidents.items():
        if slo_id not in open_alerts:
            incident.resolved_at = now
            _record_change(incident, event=NotificationEvent.RESOLVE, now=now, alerts=[])
            summary.resolved.append(incident)
    retention_incidents_sync(now=now, summary=summary)
    pool_incidents_sync(now=now, summary=summary)
    return summary


def pool_incidents_sync(*, now: datetime, summary: SyncSummary) -> None:
    """One incident per class whose pool the controller judged unhealthy (workloads.domain.health), opened
    when the verdict began, at POOL_UNHEALTHY_SEVERITY; resolved when the pool is judged otherwise."""
    incidents = {
        incident.workload_class_id: incident
        for incident in SloIncident.objects.select_for_update(of=("self",))
        .filter(resolved_at__isnull=True, kind=IncidentKind.POOL_UNHEALTHY)
        .select_related("workload_class")
    }
    unhealthy = PoolControl.objects.filter(health=PoolHealth.UNHEALTHY).select_related("workload_class")
    for control in unhealthy:
        incident = incidents.pop(control.workload_class_id, None)
        if incident is None:
            opened_at = control.health_since or now
            incident = SloIncident.objects.create(
                kind=IncidentKind.POOL_UNHEALTHY,
                workload_class=control.workload_class,
                key=f"pool-{control.workload_class_id}-{int(opened_at.timestamp())}",
                severity=settings.POOL_UNHEALTHY_SEVERITY,
                opened_at=opened_at,
            )
            summary.opened.append(incident)
            _record_change(incident, event=NotificationEvent.TRIGGER, now=now, alerts=[])
        elif _unheard_and_no_longer_silenced(incident, now):
            summary.updated.append(incident)
            _record_change(incident, event=NotificationEvent.TRIGGER, now=now, alerts=[])
    for incident in incidents.values():
        incident.resolved_at = now
        _record_change(incident, event=NotificationEvent.RESOLVE, now=now, alerts=[])
        summary.resolved.append(incident)


def retention_incidents_sync(*, now: datetime, summary: SyncSummary) -> None:
    """One incident per class whose oldest un-mirrored dead letter is past
    DEAD_LETTER_AGE_TICKET_PERCENT of the dead-letter subscription's retention (a page past
    DEAD_LETTER_AGE_PAGE_PERCENT), from the age the last telemetry poll saw; resolved when it
    drops back under (the sync mirrored and acked it). A class whose telemetry went stale keeps
    its incident: the age is unknown, not better."""
    incidents = {
        incident.workload_class_id: incident
        for incident in SloIncident.objects.select_for_update(of=("self",))
        .filter(resolved_at__isnull=True, kind=IncidentKind.DEAD_LETTER_RETENTION)
        .select_related("workload_class")
    }
    ages = dict(ClassTelemetry.objects.values_list("workload_class_id", "dead_letter_oldest_age_seconds"))
    stale_before = now - timedelta(seconds=settings.TELEMETRY_STALE_AFTER_SECONDS)
    fresh = set(
        ClassTelemetry.objects.filter(newest_sample_at__gte=stale_before).values_list("workload_class_id", flat=True)
    )
    classes = {wc.pk: wc for wc in WorkloadClass.objects.filter(pk__in=set(ages) | set(incidents))}
    for class_id, age in ages.items():
        risk = retention_risk(
            age,
            ticket_percent=settings.DEAD_LETTER_AGE_TICKET_PERCENT,
            page_percent=settings.DEAD_LETTER_AGE_PAGE_PERCENT,
        )
        incident = incidents.pop(class_id, None)
        if risk is None and incident is not None and class_id not in fresh:
            continue  # no fresh number says it is fixed
        if risk is None:
            if incident is not None:
                incident.resolved_at = now
                incident.dead_letter_oldest_age_seconds = age
                _record_change(incident, event=NotificationEvent.RESOLVE, now=now, alerts=[])
                summary.resolved.append(incident)
            continue
        if incident is None:
            incident = SloIncident.objects.create(
                kind=IncidentKind.DEAD_LETTER_RETENTION,
                workload_class=classes[class_id],
                key=f"dlr-{class_id}-{int(now.timestamp())}",
                severity=risk.severity,
                opened_at=now,
                dead_letter_oldest_age_seconds=age,
            )
            event = NotificationEvent.TRIGGER
            summary.opened.append(incident)
        elif incident.severity != risk.severity:
            incident.severity = risk.severity
            event = NotificationEvent.UPDATE
            summary.updated.append(incident)
        elif _unheard_and_no_longer_silenced(incident, now):
            event = NotificationEvent.TRIGGER
            summary.updated.append(incident)
        else:
            event = None
        incident.dead_letter_oldest_age_seconds = age
        if event is not None:
            _record_change(incident, event=event, now=now, alerts=[])
        else:
            incident.save(update_fields=["dead_letter_oldest_age_seconds"])


# --- Acknowledge ---------------------------------------------------------------------------------------
def incident_acknowledge(*, actor, incident: SloIncident, note: str, now: datetime) -> SloIncident:
    """Record who acknowledged, when and why; later severity changes notify no one, and channels
    that were notified hear of it (PagerDuty gets an `acknowledge` event for the same dedup_key)."""
    with transaction.atomic():
        incident = (
            SloIncident.objects.select_for_update(of=("self",))
            .select_related("slo__workload_class", "workload_class")
            .get(pk=incident.pk)
        )
        if incident.resolved_at is not None:
            raise ApplicationError("This incident is already resolved.", code="incident_resolved")
        if incident.acknowledged_at is not None:
            raise ApplicationError(
                f"Already acknowledged by {incident.acknowledged_by_label}.", code="incident_acknowledged"
            )
        incident.acknowledged_at = now
        incident.acknowledged_by = actor if actor is not None and actor.pk else None
        incident.acknowledged_by_label = actor.get_username() if actor is not None else "system"
        incident.acknowledgement_note = note.strip()
        incident.save(
            update_fields=["acknowledged_at", "acknowledged_by", "acknowledged_by_label", "acknowledgement_note"]
        )
        alerts = list(incident.alerts.filter(resolved_at__isnull=True))
        _record_change(incident, event=NotificationEvent.ACKNOWLEDGE, now=now, alerts=alerts)
        audit_event_record(
            actor=actor,
            action="incident.acknowledge",
            target=incident,
            workload_class_slug=incident.subject_class.slug,
            extra={"note": incident.acknowledgement_note},
        )
    return incident


# --- Silences ------------------------------------------------------------------------------------------
MAX_SILENCE = timedelta(days=30)


def silence_preview(*, matchers: dict, now: datetime) -> list[SloIncident]:
    """The open incidents a silence with these matchers would cover now."""
    probe = Silence(**{name: matchers.get(name) or "" for name in MATCHER_FIELDS})
    incidents = SloIncident.objects.filter(resolved_at__isnull=True).select_related(
        "slo__workload_class", "workload_class"
    )
    return [incident for incident in incidents if matches(probe, IncidentLabels.of(incident))]


def silence_create(*, actor, matchers: dict, reason: str, expires_at: datetime, now: datetime) -> Silence:
    if not reason.strip():
        raise ApplicationError("Say why you silence these alerts.", code="reason_required", status=400)
    if expires_at <= now:
        raise ApplicationError("The expiry must be in the future.", code="expiry_in_past", status=400)
    if expires_at - now > MAX_SILENCE:
        raise ApplicationError("A silence may last at most 30 days.", code="expiry_too_far", status=400)
    if not any(matchers.get(name) for name in MATCHER_FIELDS):
        raise ApplicationError(
            "Give at least one matcher (team, tier, class, SLO kind or severity): a silence of everything "
            "would hide every page.",
            code="matchers_required",
            status=400,
        )
    with transaction.atomic():
        silence = Silence.objects.create(
            **{name: matchers.get(name) or "" for name in MATCHER_FIELDS},
            reason=reason.strip(),
            created_by=actor if actor is not None and actor.pk else None,
            created_by_label=actor.get_username() if actor is not None else "system",
            starts_at=now,
            expires_at=expires_at,
        )
        audit_event_record(
            actor=actor,
            action="silence.create",
            target=silence,
            workload_class_slug=silence.workload_class_slug,
            extra={
                "matchers": {name: getattr(silence, name) for name in MATCHER_FIELDS if getattr(silence, name)},
                "reason": silence.reason,
                "expires_at": expires_at.isoformat(),
                "silenced_now": [incident.key for incident in silence_preview(matchers=matchers, now=now)],
            },
        )
    return silence


def silence_end(*, actor, silence: Silence, now: datetime) -> Silence:
    with transaction.atomic():
        silence = Silence.objects.select_for_update().get(pk=silence.pk)
        if not silence.is_active_at(now):
            raise ApplicationError("This silence is no longer active.", code="silence_inactive")
        silence.ended_at = now
        silence.save(update_fields=["ended_at"])
        audit_event_record(
            actor=actor, action="silence.end", target=silence, workload_class_slug=silence.workload_class_slug
        )
    return silence


def active_silence_filter(now: datetime) -> Q:
    return Q(ended_at__isnull=True, starts_at__lte=now, expires_at__gt=now)
