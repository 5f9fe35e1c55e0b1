"""What the messages a replay published did afterwards.

A replay action "succeeds" once Pub/Sub has accepted every message; that says nothing about the
work. Each message it published is followed through the rows the system already keeps:

- the dead-letter mirror row it came from (`replay_action`, `replayed_at`, `replayed_message_id`):
  a copy that reached the dead-letter topic again after the replay moved `last_seen` past
  `replayed_at` (the sync also sets the row back to `new`);
- the worker kit's result rows (`WorkResult`), found by the class and idempotency key (their
  index) and matched on the published message id: `succeeded` or `skipped_duplicate` is completed,
  `dead_lettered` is dead-lettered again even before the next sync mirrors the copy.

A message published by this replay and then replayed again by a later one belongs to the later
replay from then on (the row keeps one `replay_action`); it is counted as `replayed_again`.
One aggregate query for any number of actions, reading only rows the actions published.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, F, OuterRef, Q

from workloads.models import Action, ActionKind, DeadLetter, WorkOutcome, WorkResult

COMPLETED_OUTCOMES = (WorkOutcome.SUCCEEDED, WorkOutcome.SKIPPED_DUPLICATE)
# A finished replay's panel keeps watching its messages this long, while some have no outcome yet.
OUTCOME_WATCH = timedelta(minutes=30)


@dataclass(frozen=True)
class ReplayOutcome:
    published: int  # messages this replay published
    completed: int  # ... that a worker then completed
    dead_lettered_again: int  # ... that reached the dead-letter topic again
    pending: int  # ... with no outcome yet (queued, being worked on, or retrying)
    replayed_again: int = 0  # ... that a later replay published again (counted there)

    @property
    def came_back(self) -> bool:
        return self.dead_lettered_again > 0

    @property
    def tone(self) -> str:
        """bad: every message with an outcome came back; warn: some did; ok: all completed;
        pending: nothing came back so far and some have no outcome yet."""
        if self.dead_lettered_again:
            return "bad" if self.completed == 0 else "warn"
        if self.pending or self.replayed_again:
            return "pending"
        return "ok" if self.published else "pending"

    def summary(self) -> str:
        """E.g. "34 published, 34 dead-lettered again" or "4 published, 3 completed, 1 pending"."""
        parts = [f"{self.published} published"]
        if self.completed:
            parts.append(f"{self.completed} completed")
        if self.dead_lettered_again:
            parts.append(f"{self.dead_lettered_again} dead-lettered again")
        if self.pending:
            parts.append(f"{self.pending} pending")
        if self.replayed_again:
            parts.append(f"{self.replayed_again} replayed again later")
        return ", ".join(parts)

    def as_dict(self) -> dict:
        return {**asdict(self), "tone": self.tone, "summary": self.summary()}


def _result_of_published_message(outcomes) -> Exists:
    """A worker's result for the message this row's replay published: by class and idempotency key
    (indexed) and the published message id; rows without a key, by message id since the replay."""
    results = WorkResult.objects.filter(
        workload_class_id=OuterRef("workload_class_id"),
        message_id=OuterRef("replayed_message_id"),
        outcome__in=outcomes,
    )
    by_key = results.filter(idempotency_key=OuterRef("idempotency_key"))
    without_key = results.filter(completed_at__gte=OuterRef("replayed_at"))
    return Exists(by_key) | (Q(idempotency_key="") & Exists(without_key))


def replay_outcomes(actions) -> dict[int, ReplayOutcome]:
    """{action id: outcome} for the replay actions among `actions` (others are left out)."""
    replays = {action.pk: action for action in actions if action.kind == ActionKind.REPLAY}
    if not replays:
        return {}
    completed = _result_of_published_message(COMPLETED_OUTCOMES)
    dead_lettered = Q(last_seen__gt=F("replayed_at")) | _result_of_published_message((WorkOutcome.DEAD_LETTERED,))
    rows = (
        DeadLetter.objects.filter(replay_action_id__in=list(replays), replayed_at__isnull=False)
        # Rows a triage rule attached before this replay published them carry an older replay time.
        .filter(replayed_at__gte=F("replay_action__created_at"))
        .order_by()
        .values("replay_action_id")
        .annotate(
            attributed=Count("pk"),
            completed=Count("pk", filter=Q(completed)),
            dead_lettered=Count("pk", filter=~Q(completed) & Q(dead_lettered)),
        )
    )
    counts = {row["replay_action_id"]: row for row in rows}
    outcomes = {}
    for pk, action in replays.items():
        row = counts.get(pk, {"attributed": 0, "completed": 0, "dead_lettered": 0})
        published = max(int((action.result or {}).get("replayed", action.progress_done)), row["attributed"])
        outcomes[pk] = ReplayOutcome(
            published=published,
            completed=row["completed"],
            dead_lettered_again=row["dead_lettered"],
            pending=row["attributed"] - row["completed"] - row["dead_lettered"],
            replayed_again=published - row["attributed"],
        )
    return outcomes


def replay_outcome(action: Action) -> ReplayOutcome | None:
    return replay_outcomes([action]).get(action.pk)


def attach_replay_outcomes(actions) -> None:
    """Set `replay_outcome` on each replay action of `actions` (one query for all of them)."""
    actions = list(actions)
    outcomes = replay_outcomes(actions)
    for action in actions:
        if action.pk in outcomes:
            action.replay_outcome = outcomes[action.pk]


def outcome_still_watched(action: Action, outcome: ReplayOutcome | None, *, now: datetime) -> bool:
    """A finished replay whose messages have not all settled, recently enough to keep watching."""
    if outcome is None or not action.is_final or outcome.pending == 0 or action.finished_at is None:
        return False
    return now - action.finished_at < OUTCOME_WATCH
