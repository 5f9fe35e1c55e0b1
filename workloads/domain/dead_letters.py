"""Dead letters at risk of being lost: the oldest one still in the dead-letter subscription (not
mirrored yet) against how long the subscription keeps it.

Only the beat sync drains a dead-letter subscription into the mirror, so a sync that stopped (a
broken beat, a missing IAM grant, a failing database) shows as a dead letter that keeps ageing.
Past the subscription's retention Pub/Sub drops it for good; warning well before that leaves time
to fix the sync. The age comes from the Metrics port (Monitoring's oldest_unacked_message_age of
the dead-letter subscription on Google Cloud), which the sync does not depend on.
"""

from __future__ import annotations

from dataclasses import dataclass

# Every provider keeps a dead-letter subscription's messages this long, whatever the class's own
# retention: only the mirror sync drains it, so this is how long a sync outage may last before
# dead letters are lost (the most the emulator and most projects accept; docs/gcp.md).
DEAD_LETTER_RETENTION_SECONDS = 7 * 86400


@dataclass(frozen=True)
class RetentionRisk:
    age_seconds: float
    retention_seconds: int
    severity: str  # "ticket" (warn) or "page" (loss is near)

    @property
    def percent(self) -> float:
        return 100.0 * self.age_seconds / self.retention_seconds

    @property
    def remaining_seconds(self) -> float:
        return max(0.0, self.retention_seconds - self.age_seconds)


def retention_risk(
    age_seconds: float | None,
    *,
    ticket_percent: float,
    page_percent: float,
    retention_seconds: int = DEAD_LETTER_RETENTION_SECONDS,
) -> RetentionRisk | None:
    """The risk for a dead-letter subscription whose oldest message is `age_seconds` old, or None
    while it is under `ticket_percent` of the retention (or nothing waits)."""
    if age_seconds is None or age_seconds <= 0:
        return None
    percent = 100.0 * age_seconds / retention_seconds
    if percent >= page_percent:
        return RetentionRisk(age_seconds, retention_seconds, "page")
    if percent >= ticket_percent:
        return RetentionRisk(age_seconds, retention_seconds, "ticket")
    return None
