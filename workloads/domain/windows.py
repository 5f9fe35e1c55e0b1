"""Which rollup rows make up a period: whole hours from hourly rows, the ragged edges from minute
rows. Plain Python, no Django.

Hourly rows exist for every hour that has minutes (the poll refreshes the hours it touches), so a
28-day window reads ~672 hourly rows per class instead of ~40,000 minute rows. Minute rows are
kept for a retention period only; an edge older than that is widened to its whole hour.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

MINUTE = "minute"
HOUR = "hour"
_ONE_MINUTE = timedelta(minutes=1)
_ONE_HOUR = timedelta(hours=1)


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + _ONE_HOUR


@dataclass(frozen=True)
class Span:
    """Rows of one resolution whose bucket_start is in [start, end)."""

    resolution: str
    start: datetime
    end: datetime

    def contains(self, bucket_start: datetime) -> bool:
        return self.start <= bucket_start < self.end


def window_spans(start: datetime, end: datetime, *, minutes_kept_since: datetime | None = None) -> list[Span]:
    """Spans covering [start, end) (both rounded down to the minute). Edges before
    `minutes_kept_since` (where minute rows may have been folded away) widen to whole hours."""
    start, end = floor_minute(start), floor_minute(end)
    if minutes_kept_since is not None:
        if start < minutes_kept_since:
            start = floor_hour(start)
        if end < minutes_kept_since:
            end = ceil_hour(end)
    if start >= end:
        return []
    first_full_hour, last_full_hour_end = ceil_hour(start), floor_hour(end)
    if first_full_hour >= last_full_hour_end:
        return [Span(MINUTE, start, end)]
    spans = []
    if start < first_full_hour:
        spans.append(Span(MINUTE, start, first_full_hour))
    spans.append(Span(HOUR, first_full_hour, last_full_hour_end))
    if last_full_hour_end < end:
        spans.append(Span(MINUTE, last_full_hour_end, end))
    return spans
