"""Seek a class's subscription to a time or a snapshot, and take named snapshots.

Both are actions (kinds `seek` and `snapshot`) with one step each. A seek acts on the WHOLE
subscription, not on dead letters: it is refused unless the caller confirms, and the refusal
carries the effect text to show in that confirmation. Re-running a seek after a crash seeks to the
same point again, which is harmless beyond what the first seek already did (messages processed
in between are delivered again; the worker kit skips completed idempotency keys, but only those
completed within the class's dedup TTL: a seek further back than that (to a time, or to a snapshot
keeping an older message) needs `accept_rerun`, and
its preview says how many completed keys would run again and how many dead-lettered messages
come back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from workloads.errors import ApplicationError
from workloads.models import Action, ActionKind, ActionStep, DeadLetter, WorkloadClass, WorkOutcome, WorkResult
from workloads.providers import get_providers
from workloads.providers.base import ProviderError
from workloads.providers.specs import queue_spec
from workloads.selectors.subscriptions import class_snapshots, snapshot_short_name
from workloads.services.actions import ActionHandler, PlannedStep, action_request, register_handler
from workloads.validation import PUBSUB_ID

SNAPSHOT_ID = re.compile(rf"^{PUBSUB_ID}$")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class SeekImpact:
    """What a seek to a time does to work already done. The worker kit skips an idempotency key
    only while its success is younger than the class's dedup TTL: older completed work published
    after the seek's time runs again, and every dead-lettered message published after it is
    delivered to the workers again (Pub/Sub's seek restores the original, not the dead letter)."""

    to_time: datetime
    dedup_ttl_seconds: int
    protected_since: datetime  # successes completed after this are skipped when redelivered
    completed_skipped: int  # completed after the seek's time, inside the dedup window
    completed_rerun: int  # completed after the seek's time, before the window: they run again
    dead_lettered: int  # dead letters first seen after the seek's time: their originals come back

    @property
    def unprotected(self) -> bool:
        """The seek reaches back past what dedup protects."""
        return self.to_time < self.protected_since

    def describe(self) -> str:
        ttl = _duration(self.dedup_ttl_seconds)
        text = (
            f"Deduplication protects work completed in the last {ttl} (since {_when(self.protected_since)}): "
            f"{self.completed_skipped} completed key{_s(self.completed_skipped)} in that window will be skipped."
        )
        if self.unprotected:
            further = _duration((self.protected_since - self.to_time).total_seconds())
            text += (
                f" The seek reaches {further} further back: {self.completed_rerun} completed "
                f"key{_s(self.completed_rerun)} from before {_when(self.protected_since)} will run again "
                "(their handlers, results and completion events)."
            )
        if self.dead_lettered:
            text += (
                f" {self.dead_lettered} dead-lettered message{_s(self.dead_lettered)} published since then will be "
                "delivered to the workers again: one that fails again becomes a new dead letter, so do not also "
                "replay their dead letters."
            )
        return text


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds >= 7200:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds // 60} min"


def seek_impact(*, workload_class: WorkloadClass, to_time: datetime, now: datetime) -> SeekImpact:
    protected_since = now - timedelta(seconds=workload_class.dedup_ttl_seconds)
    counts = WorkResult.objects.filter(
        workload_class=workload_class, outcome=WorkOutcome.SUCCEEDED, superseded=False, completed_at__gt=to_time
    ).aggregate(
        skipped=Count("pk", filter=Q(completed_at__gt=protected_since)),
        rerun=Count("pk", filter=Q(completed_at__lte=protected_since)),
    )
    dead_lettered = DeadLetter.objects.filter(workload_class=workload_class, first_seen__gt=to_time).count()
    return SeekImpact(
        to_time=to_time,
        dedup_ttl_seconds=workload_class.dedup_ttl_seconds,
        protected_since=protected_since,
        completed_skipped=counts["skipped"],
        completed_rerun=counts["rerun"],
        dead_lettered=dead_lettered,
    )


def seek_effect(
    *, workload_class: WorkloadClass, to_time: datetime | None = None, snapshot: str = "", now: datetime | None = None
) -> str:
    """What a seek does, in words, for the confirmation."""
    subscription = workload_class.subscription
    if to_time is not None:
        impact = seek_impact(workload_class=workload_class, to_time=to_time, now=now or timezone.now())
        return (
            f"Seek {subscription} to {_when(to_time)}: every message published after {_when(to_time)} becomes "
            "undelivered again, including ones already processed; every earlier one is marked acknowledged. "
            "This affects the whole subscription, not only dead letters. " + impact.describe()
        )
    text = (
        f"Seek {subscription} to snapshot {snapshot}: every message that was unacknowledged when the snapshot was "
        "taken, or published after it, becomes undelivered again, including ones already processed; every other "
        "message is marked acknowledged. This affects the whole subscription, not only dead letters. "
    )
    reach = snapshot_reach(workload_class, snapshot)
    if reach is not None:
        impact = seek_impact(workload_class=workload_class, to_time=reach, now=now or timezone.now())
        return text + f"Its oldest kept message was published {_when(reach)}. " + impact.describe()
    ttl = _duration(workload_class.dedup_ttl_seconds)
    return text + f"Deduplication skips only keys completed in the last {ttl}; older completed work runs again."


def _impact_body(impact: SeekImpact | None) -> dict | None:
    if impact is None:
        return None
    return {
        "dedup_ttl_seconds": impact.dedup_ttl_seconds,
        "protected_since": impact.protected_since.isoformat(),
        "unprotected": impact.unprotected,
        "completed_skipped": impact.completed_skipped,
        "completed_rerun": impact.completed_rerun,
        "dead_lettered": impact.dead_lettered,
    }


def _check_snapshot_id(name: str) -> None:
    if not SNAPSHOT_ID.match(name):
        raise ApplicationError(
            f"{name!r} is not a valid snapshot name: 3-255 letters, digits or - _ . ~ + %, starting with a letter "
            "(not with 'goog').",
            code="invalid_snapshot",
            status=400,
        )


# Pub/Sub expires a snapshot 7 days after the oldest unacknowledged message it keeps.
SNAPSHOT_RETENTION = timedelta(days=7)


def snapshot_reach(workload_class: WorkloadClass, snapshot: str) -> datetime | None:
    """The earliest publish time a seek to the snapshot can bring back: its oldest kept message was
    published SNAPSHOT_RETENTION before the snapshot expires (at or before the snapshot was taken,
    so judging dedup from there never understates what runs again). None when the provider gives no
    expiry."""
    for info in class_snapshots(workload_class):
        if snapshot in (info.name, snapshot_short_name(info)) and info.expire_time is not None:
            return info.expire_time - SNAPSHOT_RETENTION
    return None


def _check_snapshot_exists(workload_class: WorkloadClass, snapshot: str) -> None:
    """Refuse a seek to a snapshot the subscription cannot seek to now (unknown, expired, or of
    another topic), instead of accepting it and failing later in the action."""
    known = class_snapshots(workload_class)
    if any(snapshot in (info.name, snapshot_short_name(info)) for info in known):
        return
    names = [snapshot_short_name(info) for info in known]
    listing = f"its snapshots are {', '.join(names)}" if names else "it has none"
    raise ApplicationError(
        f"No snapshot {snapshot!r} to seek {workload_class.slug}'s subscription to: {listing}. "
        "Take a snapshot first, or seek to a time.",
        code="unknown_snapshot",
        status=400,
        extra={"snapshots": names},
    )


def subscription_seek_request(
    *,
    actor,
    workload_class: WorkloadClass,
    to_time: datetime | None = None,
    snapshot: str = "",
    confirm: bool = False,
    accept_rerun: bool = False,
    reason: str = "",
    enqueue: bool = True,
) -> Action:
    """Seek the class's subscription. Without `confirm` it is refused with the effect text; a seek
    to a time older than the class's dedup TTL also needs `accept_rerun` (completed work before
    the dedup window runs again)."""
    if (to_time is None) == (not snapshot):
        raise ApplicationError("Give either a time or a snapshot to seek to.", code="invalid_seek", status=400)
    if to_time is not None and timezone.is_naive(to_time):
        raise ApplicationError("The time must carry a time zone (e.g. ...Z).", code="invalid_seek", status=400)
    reach = to_time
    if snapshot:
        _check_snapshot_id(snapshot)
        _check_snapshot_exists(workload_class, snapshot)
        reach = snapshot_reach(workload_class, snapshot)
    now = timezone.now()
    effect = seek_effect(workload_class=workload_class, to_time=to_time, snapshot=snapshot, now=now)
    impact = seek_impact(workload_class=workload_class, to_time=reach, now=now) if reach is not None else None
    if not confirm:
        raise ApplicationError(
            f"Confirm this seek (confirm: true). {effect}",
            code="confirmation_required",
            status=400,
            extra={"effect": effect, "impact": _impact_body(impact)},
        )
    if impact is not None and impact.unprotected and not accept_rerun:
        raise ApplicationError(
            f"This seek reaches back past the {_duration(impact.dedup_ttl_seconds)} that deduplication protects: "
            f"{impact.completed_rerun} completed key{_s(impact.completed_rerun)} would run again. Send "
            "accept_rerun: true to seek anyway, or seek to a time after "
            f"{_when(impact.protected_since)}.",
            code="rerun_acknowledgement_required",
            status=400,
            extra={"effect": effect, "impact": _impact_body(impact)},
        )
    return action_request(
        kind=ActionKind.SEEK,
        actor=actor,
        reason=reason,
        workload_class=workload_class,
        target=workload_class.subscription,
        name=f"Seek {workload_class.slug} to {snapshot or _when(to_time)}",
        parameters={
            "to_time": to_time.isoformat() if to_time else None,
            "snapshot": snapshot,
            "effect": effect,
            "accept_rerun": bool(accept_rerun),
            "impact": _impact_body(impact),
        },
        enqueue=enqueue,
    )


def snapshot_create_request(
    *, actor, workload_class: WorkloadClass, name: str = "", reason: str = "", enqueue: bool = True
) -> Action:
    """Take a named snapshot of the class's subscription (default name: before-deploy-<slug>-<time>)."""
    name = name or f"before-deploy-{workload_class.slug}-{timezone.now():%Y%m%d-%H%M%S}"
    _check_snapshot_id(name)
    return action_request(
        kind=ActionKind.SNAPSHOT,
        actor=actor,
        reason=reason or "Snapshot before deploy.",
        workload_class=workload_class,
        target=workload_class.subscription,
        name=f"Snapshot {name}",
        parameters={"name": name},
        enqueue=enqueue,
    )


def _class_of(action: Action) -> WorkloadClass:
    if action.workload_class is None:
        raise ApplicationError("The class of this action was deleted.")
    return action.workload_class


class SeekHandler(ActionHandler):
    kind = ActionKind.SEEK

    def plan(self, action: Action) -> list[PlannedStep]:
        return [PlannedStep(key=_class_of(action).subscription, payload=dict(action.parameters))]

    def run_step(self, action: Action, step: ActionStep) -> dict:
        spec = queue_spec(_class_of(action))
        if step.payload.get("snapshot"):
            get_providers().queue.seek(spec, to_snapshot=step.payload["snapshot"])
            return {"snapshot": step.payload["snapshot"]}
        get_providers().queue.seek(spec, to_time=parse_datetime(step.payload["to_time"]))
        return {"to_time": step.payload["to_time"]}


class SnapshotHandler(ActionHandler):
    kind = ActionKind.SNAPSHOT

    def plan(self, action: Action) -> list[PlannedStep]:
        return [PlannedStep(key=action.parameters["name"], payload={"name": action.parameters["name"]})]

    def run_step(self, action: Action, step: ActionStep) -> dict:
        try:
            info = get_providers().queue.create_snapshot(queue_spec(_class_of(action)), step.payload["name"])
        except ProviderError as exc:
            if exc.code == "ALREADY_EXISTS" and action.attempts > 1:
                # An earlier attempt of this very action created it and died before recording so.
                return {"name": step.payload["name"], "note": "already existed when this attempt resumed"}
            raise
        return {"name": info.name, "expire_time": info.expire_time.isoformat() if info.expire_time else None}


register_handler(SeekHandler())
register_handler(SnapshotHandler())
