"""What a handler gets besides its payload: which attempt this is, the unit's idempotency key, its
deadline, the trace id, and a meter for the records and tokens it used (cost attribution)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


class CostMeter:
    """Records and model tokens one unit of work used. Handlers may call `add` from any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self.records = 0
        self.tokens = 0

    def add(self, *, records: int = 0, tokens: int = 0) -> None:
        if records < 0 or tokens < 0:
            raise ValueError("records and tokens only ever grow")
        with self._lock:
            self.records += int(records)
            self.tokens += int(tokens)

    def read(self) -> tuple[int, int]:
        with self._lock:
            return self.records, self.tokens


@dataclass(frozen=True)
class CostRates:
    """The class's price per record and per 1k tokens (the rest of its cost is instance time,
    which the telemetry attributes per class, not per unit)."""

    per_record: Decimal = Decimal(0)
    per_1k_tokens: Decimal = Decimal(0)

    def cost(self, records: int, tokens: int) -> Decimal:
        return records * self.per_record + Decimal(tokens) / 1000 * self.per_1k_tokens


@dataclass(frozen=True)
class WorkContext:
    slug: str
    message_id: str
    attempt: int  # 1 on first delivery
    idempotency_key: str
    trace_id: str
    deadline: datetime  # when the timeout tier runs out (UTC)
    deadline_monotonic: float = field(repr=False)
    meter: CostMeter = field(default_factory=CostMeter, repr=False)
    # Set when the attempt timed out or the worker is stopping hard: a long-running handler can
    # check it between steps and return early (its result is discarded either way).
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def remaining_seconds(self) -> float:
        return max(0.0, self.deadline_monotonic - time.monotonic())
