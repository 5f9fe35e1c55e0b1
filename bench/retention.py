"""Retention: table sizes over a simulated week of demo traffic, with the hourly `prune` tick.

Each simulated hour (six with --quick) writes what the demo's traffic writes (per class: events published, leased
and acked on the local queue with their idempotency keys and work results, one worker report per
reporting interval with latency buckets, a scale action with steps and its audit event, a dead
letter that is then replayed, a pool change; poll runs; a login session), then runs the prunes as
beat would (`prunes_run` and the telemetry downsample) at that simulated time. Retentions are
shortened to a day or two, so a week covers several of them: the sizes must level off once the
first retention has passed and stay flat from then on. Figure: rows of every pruned table after
day 7; baseline: the same after day 3. A second line compares what stays with what was written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.common import Result, Target, make_classes, reset_tables

DAYS = 7
SHORT_RETENTIONS = {
    "WORK_RESULT_RETENTION_DAYS": 1,
    "ACTION_RETENTION_DAYS": 1,
    "DEAD_LETTER_RETENTION_DAYS": 1,
    "AUDIT_RETENTION_DAYS": 2,
    "LOCAL_WORKER_REPORT_RETENTION_DAYS": 1,
    "LOCAL_POOL_CHANGE_RETENTION_DAYS": 1,
    "TELEMETRY_POLL_RUN_RETENTION_DAYS": 1,
}


def _pruned_models():
    from django.apps import apps

    from workloads.services.pruning import PRUNES

    return [apps.get_model(label) for prune in PRUNES for label in prune.models]


def _sizes() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in _pruned_models()}


def _traffic(classes, queue, specs, clock, *, events: int, reports: int) -> int:
    """Write the demo traffic of the hours up to `clock.now`; returns how many rows it wrote."""
    from django.contrib.sessions.models import Session

    from workloads.domain import histogram
    from workloads.models import (
        Action,
        ActionKind,
        ActionState,
        ActionStep,
        AuditEvent,
        DeadLetter,
        DeadLetterStatus,
        IdempotencyRecord,
        PollRun,
        StepState,
        WorkOutcome,
        WorkResult,
    )
    from workloads.providers.base import OutboundMessage
    from workloads.providers.local.models import (
        LocalPoolChange,
        LocalWorkerPool,
        LocalWorkerReport,
    )

    now = clock.now
    written = 0
    for wc in classes:
        spec = specs[wc.pk]
        stamp = f"{now:%Y%m%d%H}"
        keys = [f"{wc.slug}:{stamp}:{n}" for n in range(events)]
        queue.publish(spec, [OutboundMessage(data=b"{}", attributes={"k": key}) for key in keys])
        received = queue.pull(spec, max_messages=events, timeout=0)
        queue.ack(spec, [m.ack_id for m in received])
        IdempotencyRecord.objects.bulk_create(
            IdempotencyRecord(
                workload_class=wc,
                key=key,
                payload_fingerprint="0" * 64,
                created_at=now,
                expires_at=now + timedelta(seconds=wc.dedup_ttl_seconds),
            )
            for key in keys
        )
        WorkResult.objects.bulk_create(
            WorkResult(
                workload_class=wc,
                idempotency_key=key,
                message_id=key,
                outcome=WorkOutcome.SUCCEEDED,
                attempts=1,
                completed_at=now,
            )
            for key in keys
        )
        LocalWorkerReport.objects.bulk_create(
            LocalWorkerReport(
                slug=wc.slug,
                interval_start=now - timedelta(minutes=60 * (n + 1) // reports),
                interval_end=now - timedelta(minutes=60 * n // reports),
                interval_end_ms=round((now - timedelta(minutes=60 * n // reports)).timestamp() * 1000),
                completed=events // reports,
                latency_buckets=[1 if index in (3, 5) else 0 for index in range(histogram.BUCKETS)],
            )
            for n in range(reports)
        )
        action = Action.objects.create(
            kind=ActionKind.SCALE, workload_class=wc, state=ActionState.SUCCEEDED, finished_at=now
        )
        ActionStep.objects.bulk_create(
            ActionStep(action=action, position=n, key=wc.worker_pool, state=StepState.DONE, finished_at=now)
            for n in range(2)
        )
        AuditEvent.objects.create(actor_label="system", action="pool.scale", occurred_at=now)
        DeadLetter.objects.create(
            workload_class=wc,
            message_id=f"dl-{stamp}",
            last_message_id=f"dl-{stamp}",
            first_seen=now,
            last_seen=now,
            mirrored_at=now,
            status=DeadLetterStatus.REPLAYED,
            replayed_at=now,
        )
        pool, _ = LocalWorkerPool.objects.get_or_create(
            name=wc.worker_pool, defaults={"slug": wc.slug, "update_time": now, "created_at": now}
        )
        LocalPoolChange.objects.create(pool=pool, instance_count=1, generation=1, changed_at=now)
        written += events * 5 + reports + 6
    PollRun.objects.bulk_create(
        PollRun(metric=f"m{n}", started_at=now, window_start=now, window_end=now, ok=True) for n in range(9)
    )
    Session.objects.create(session_key=f"s{now:%Y%m%d%H}", session_data="", expire_date=now + timedelta(days=2))
    return written + 10


class _Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def run(args) -> list[Result]:
    from django.test.utils import override_settings

    from workloads.providers.local import LocalQueue
    from workloads.providers.specs import queue_spec
    from workloads.services.pruning import prunes_run
    from workloads.services.rollups import rollups_downsample

    reset_tables()
    classes = make_classes(2 if args.quick else 4, prefix="retention", slos=False, dedup_ttl_seconds=86400)
    events, reports = (10, 6) if args.quick else (60, 60)
    step = 6 if args.quick else 1  # hours of traffic between prune ticks (beat's is 1)
    clock = _Clock(datetime(2026, 1, 5, tzinfo=UTC))
    queue = LocalQueue(now=clock)
    specs = {}
    for wc in classes:
        wc.message_retention_seconds = 86400
        wc.save(update_fields=["message_retention_seconds"])
        specs[wc.pk] = queue_spec(wc)
        queue.ensure_resources(specs[wc.pk])

    daily, written = [], 0
    with override_settings(**SHORT_RETENTIONS):
        for hour in range(step, DAYS * 24 + 1, step):
            clock.now += timedelta(hours=step)
            written += _traffic(classes, queue, specs, clock, events=events, reports=reports)
            prunes_run(now=clock.now)
            rollups_downsample(now=clock.now)
            if hour % 24 == 0:
                daily.append(_sizes())
    totals = [sum(day.values()) for day in daily]
    per_day = ", ".join(f"{total:,}" for total in totals)
    kept = totals[-1]
    extra = {"rows_by_day": daily, "retentions_days": SHORT_RETENTIONS, "classes": len(classes)}
    return [
        Result(
            "retention: rows after day 7 vs day 3",
            kept,
            "rows",
            baseline=totals[2],
            baseline_name="rows of the same tables after day 3",
            target=Target("<=", 1.1),
            note=f"rows at the end of each day: {per_day} (retentions shortened to 1-2 days)",
            extra=extra,
        ),
        Result(
            "retention: rows kept vs written in the week",
            kept,
            "rows",
            baseline=written,
            baseline_name="rows written over the week",
        ),
    ]
