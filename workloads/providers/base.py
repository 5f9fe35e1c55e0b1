"""The three ports the control plane acts through: Queue, WorkerPools and Metrics.

Plain dataclasses in and out; nothing here knows Django, HTTP or Google's types. Adapters live in
`gcp/` (Pub/Sub, Cloud Run Admin, Cloud Monitoring) and `local/` (the embedded default), and one
contract suite (`tests/contract/`) proves they behave the same.

Semantics follow Pub/Sub where the two could differ:
- a topic fans out to its subscriptions; a message is redelivered until acked;
- `delivery_attempt` starts at 1 and grows by one per nack or expired lease;
- after `max_delivery_attempts` failed deliveries a message moves to the dead-letter topic with
  the `CloudPubSubDeadLetterSource*` attributes added (originals kept);
- with ordering on, messages of one ordering key are delivered in publish order, one at a time;
- acked messages are retained for `message_retention_seconds`, so `seek` to an earlier time
  redelivers them.
"""

from __future__ import annotations

import enum
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from workloads.domain.dead_letters import DEAD_LETTER_RETENTION_SECONDS  # noqa: F401 (re-exported)
from workloads.domain.histogram import LATENCY_BUCKET_BOUNDS

# Attributes Pub/Sub adds to a dead-lettered copy; the local provider adds the same ones.
DEAD_LETTER_DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
DEAD_LETTER_SOURCE_SUBSCRIPTION = "CloudPubSubDeadLetterSourceSubscription"
DEAD_LETTER_SOURCE_PROJECT = "CloudPubSubDeadLetterSourceSubscriptionProject"
DEAD_LETTER_PUBLISH_TIME = "CloudPubSubDeadLetterSourceTopicPublishTime"

# How long every provider keeps a dead letter: workloads/domain/dead_letters.py.

# Attributes the control plane itself sets on messages.
ATTR_CLASS = "cp-class"
ATTR_IDEMPOTENCY_KEY = "cp-idempotency-key"
ATTR_SCHEMA_VERSION = "cp-schema-version"
ATTR_INGESTED_AT = "cp-ingested-at"  # RFC 3339 UTC
ATTR_TRACE_ID = "cp-trace-id"
ATTR_REPLAY_COUNT = "cp-replay-count"
# On a replayed message: the dead-letter mirror row it came from (that row's first dead-letter
# message id), so a replay that fails again updates the same row instead of making a new one.
ATTR_REPLAY_OF = "cp-replay-of"
ATTR_ERROR_TYPE = "cp-error-type"
ATTR_ERROR_MESSAGE = "cp-error-message"
ATTR_ERROR_SIGNATURE = "cp-error-signature"
ATTR_ATTEMPTS = "cp-attempts"


# --- Errors -------------------------------------------------------------------------------------
class ProviderError(Exception):
    """A provider call failed. `permanent` errors (permission denied, not found, invalid argument)
    will fail again until someone fixes something, and `message` says what; transient ones
    (unavailable, deadline exceeded, resource exhausted, aborted) were already retried by the
    adapter with backoff up to its deadline and may succeed later."""

    def __init__(self, message: str, *, permanent: bool, code: str = "", resource: str = ""):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code  # e.g. "PERMISSION_DENIED", "UNAVAILABLE"
        self.resource = resource

    def __str__(self) -> str:
        return self.message


# --- Specs: what a workload class asks of each port ------------------------------------------------
@dataclass(frozen=True)
class QueueSpec:
    """Everything the Queue port needs to know about one class (built from a WorkloadClass by
    `workloads.providers.specs.queue_spec`). Names are full resource names."""

    slug: str
    topic: str
    subscription: str
    dead_letter_topic: str
    dead_letter_subscription: str
    completion_topic: str = ""
    ack_deadline_seconds: int = 60
    max_delivery_attempts: int = 5
    min_backoff_seconds: int = 10
    max_backoff_seconds: int = 600
    ordering: bool = False
    message_retention_seconds: int = 7 * 86400
    # (key, value) pairs put on every topic and subscription of the class (providers/labels.py).
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PoolSpec:
    slug: str
    worker_pool: str  # projects/P/locations/L/workerPools/W


@dataclass(frozen=True)
class MetricTarget:
    """One class as the Metrics port sees it: the resources its series are grouped by."""

    slug: str
    subscription: str
    dead_letter_subscription: str
    worker_pool: str
    # What runs the class (workloads.runtimes.Runtime) and its name there: the runtime's own
    # metrics (Metrics.runtime_series) are found by it.
    runtime: str = "worker_pool"
    runtime_resource: str = ""
    # The Cloud Monitoring scoping project its metrics are read through (its environment's);
    # empty: the provider's own project. Targets sharing one are read in one call per metric.
    scope_project: str = ""


# --- Queue ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutboundMessage:
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    ordering_key: str = ""


@dataclass(frozen=True)
class ReceivedMessage:
    message_id: str
    ack_id: str
    data: bytes
    attributes: dict[str, str]
    ordering_key: str
    delivery_attempt: int  # 1 on first delivery
    publish_time: datetime


class Outcome(enum.Enum):
    ACK = "ack"  # done (or deliberately dropped): never redeliver
    NACK = "nack"  # redeliver after `delay_seconds` (counts as a delivery attempt)


@dataclass(frozen=True)
class Disposition:
    """What a consumer handler decided for one message."""

    outcome: Outcome
    delay_seconds: float = 0.0

    @classmethod
    def ack(cls) -> Disposition:
        return cls(Outcome.ACK)

    @classmethod
    def nack(cls, delay_seconds: float = 0.0) -> Disposition:
        # Pub/Sub can delay a redelivery by at most 600 s (the longest ack deadline).
        return cls(Outcome.NACK, max(0.0, min(600.0, float(delay_seconds))))


MessageHandler = Callable[[ReceivedMessage], Disposition]


def retry_backoff_seconds(*, attempts: int, minimum: int, maximum: int) -> float:
    """The class's retry policy for a nack that names no delay: the redelivery delay grows
    exponentially with the delivery attempt, from `minimum` (after the first attempt) up to
    `maximum`, as Pub/Sub's retry policy does. Every provider applies it in our code (the Pub/Sub
    subscription itself has no retry policy, see docs/gcp.md), so the backoff is applied once."""
    if maximum <= 0:
        return 0.0
    return float(min(maximum, max(minimum, minimum * 2 ** max(0, attempts - 1))))


@dataclass(frozen=True)
class ResourceDrift:
    resource: str  # full resource name
    setting: str  # e.g. "ack_deadline_seconds", "dead_letter_policy.max_delivery_attempts"
    expected: object
    actual: object


@dataclass
class EnsureResult:
    created: list[str] = field(default_factory=list)  # resource names created
    updated: list[str] = field(default_factory=list)  # resource names changed (only with apply=True)
    drift: list[ResourceDrift] = field(default_factory=list)  # differences found (left alone unless apply)


@dataclass(frozen=True)
class SnapshotInfo:
    name: str  # projects/P/snapshots/S
    expire_time: datetime | None


class Queue(ABC):
    # Whether publish() writes to the caller's database and so belongs in its transaction (the
    # local queue). Otherwise publish is a network call, which must never be made inside a
    # transaction: the session would sit "idle in transaction", holding its locks, for as long as
    # the provider takes to answer.
    publish_joins_transaction = False

    @abstractmethod
    def ensure_resources(self, spec: QueueSpec, *, apply: bool = False) -> EnsureResult:
        """Create missing topic, subscription (ack deadline, retry policy, dead-letter policy,
        ordering, retention with acked messages retained for seek), dead-letter topic and its
        subscription, and the completion topic when set. Existing resources that differ from the
        spec are reported as drift and changed only when `apply` is true."""

    @abstractmethod
    def publish(
        self,
        spec: QueueSpec,
        messages: Sequence[OutboundMessage],
        *,
        topic: str = "",
        deadline: float | None = None,
        on_published: Callable[[int, str], None] | None = None,
    ) -> list[str]:
        """Publish in batches to `topic` (default: the class topic); message ids in input order.
        Ordering keys are honoured when the spec has ordering on. `deadline`: the most seconds the
        caller waits (a transient ProviderError after it); None, the adapter's own retry budget.
        `on_published(index, message_id)` is called for each message published, also when others
        of the call failed (as Pub/Sub settles each message on its own; the failure is raised
        after), so a caller publishing for several requests at once knows whose messages went out."""

    @abstractmethod
    def consume(
        self,
        spec: QueueSpec,
        handler: MessageHandler,
        *,
        max_concurrency: int,
        stop: threading.Event,
    ) -> None:
        """Deliver messages from the class subscription to `handler` on worker threads, never more
        than `max_concurrency` at once, until `stop` is set; then stop pulling, let in-flight
        handlers finish, and return. Leases of in-flight messages are extended while the handler
        runs. Messages pulled but not handed out are released (redelivered later)."""

    @abstractmethod
    def pull(self, spec: QueueSpec, *, max_messages: int, timeout: float = 2.0) -> list[ReceivedMessage]:
        """Lease up to `max_messages` from the class subscription (unary pull), returning what is
        available within `timeout` seconds (possibly nothing). Settle each with ack/nack."""

    @abstractmethod
    def ack(self, spec: QueueSpec, ack_ids: Sequence[str]) -> None:
        """Acknowledge messages leased from the class subscription."""

    @abstractmethod
    def nack(self, spec: QueueSpec, ack_ids: Sequence[str], *, delay_seconds: float = 0.0) -> None:
        """Make leased messages redeliverable after `delay_seconds` (at most 600)."""

    @abstractmethod
    def peek_dead_letters(self, spec: QueueSpec, *, max_messages: int) -> list[ReceivedMessage]:
        """Lease up to `max_messages` from the dead-letter subscription without acking them; they
        come back after the lease unless acked with `ack_dead_letters`."""

    @abstractmethod
    def ack_dead_letters(self, spec: QueueSpec, ack_ids: Sequence[str]) -> None:
        """Remove dead letters (leased by `peek_dead_letters`) from the dead-letter subscription."""

    @abstractmethod
    def republish(
        self,
        spec: QueueSpec,
        messages: Sequence[OutboundMessage],
        *,
        velocity: float | None = None,
        on_published: Callable[[int, str], None] | None = None,
    ) -> list[str]:
        """Publish to the class topic at most `velocity` messages per second (None = no cap),
        calling `on_published(index, message_id)` after each so the caller can record progress
        as it goes (also for those published before a failure, which is raised after). Without a
        cap the messages go out together, as one batch. Returns the message ids in input order."""

    @abstractmethod
    def seek(self, spec: QueueSpec, *, to_time: datetime | None = None, to_snapshot: str | None = None) -> None:
        """Seek the class subscription: to a time (messages published after it become unacked,
        earlier ones acked) or to a snapshot. Exactly one of the two must be given."""

    @abstractmethod
    def create_snapshot(self, spec: QueueSpec, name: str) -> SnapshotInfo:
        """Snapshot the class subscription's acknowledgment state under `name` (a short id)."""

    @abstractmethod
    def topic_subscriptions(self, spec: QueueSpec) -> list[str]:
        """Every subscription attached to the class topic (full names, sorted), the class's own
        included: a message published to the topic (a replay) reaches each of them."""

    @abstractmethod
    def list_snapshots(self, spec: QueueSpec) -> list[SnapshotInfo]:
        """The unexpired snapshots the class subscription can seek to (those of its topic), by name."""

    # Deleting a class's resources (workloads/services/class_deletion.py). Idempotent: a resource
    # already gone is not an error, so a deletion that stopped halfway can simply run again.
    @abstractmethod
    def delete_subscription(self, name: str) -> bool:
        """Delete the subscription `name` (full name) with its unacked messages, its acked ones kept
        for seek, and its snapshots' hold on it. True if it was deleted, False if it did not exist."""

    @abstractmethod
    def delete_topic(self, name: str) -> bool:
        """Delete the topic `name`. Subscriptions still attached survive, detached (Pub/Sub's
        behaviour: they stop receiving), so delete the class's own subscriptions first. True if it
        was deleted, False if it did not exist."""


# --- Worker pools ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolState:
    name: str
    instance_count: int
    generation: int
    observed_generation: int
    ready: bool  # reconciled: not reconciling and observed == generation and the latest revision is ready
    reconciling: bool
    last_modifier: str  # who changed the pool last (email on GCP, "controlplane" or a user locally)
    update_time: datetime | None
    message: str = ""  # the terminal condition's message when not ready
    # Worker exits, where the provider sees them (the local fleet does; Cloud Run's API does not):
    # exits in a row of workers that died soon after starting, and the last one's time and code.
    exits_observed: bool = False
    exits_in_row: int = 0
    last_exit_at: datetime | None = None
    last_exit_code: int | None = None
    # The revision the pool runs (Cloud Run: latestReadyRevision; local: runfleet's start). A
    # change is a deployment, recorded by the scaling controller's read of the pool.
    revision: str = ""


class WorkerPools(ABC):
    @abstractmethod
    def get(self, spec: PoolSpec) -> PoolState:
        """The pool's current state."""

    @abstractmethod
    def set_instances(self, spec: PoolSpec, count: int, *, reason: str) -> PoolState:
        """Set the manual instance count and wait for the change to be accepted (the long-running
        operation); a no-op that returns the current state when already at `count`."""

    @abstractmethod
    def delete(self, spec: PoolSpec) -> bool:
        """Delete the class's pool, stopping its workers, and wait until it is gone. True if it was
        deleted, False if it did not exist (idempotent)."""

    def ensure(self, spec: PoolSpec, *, initial_instances: int = 0) -> PoolState:
        """Make sure the class's pool exists and return its state. Where pools are deployed by
        someone else (Cloud Run: gcloud or Terraform, with their image) this only checks, raising
        the same NOT_FOUND error as `get`; the local provider creates a missing pool with
        `initial_instances` and leaves an existing one as it is."""
        return self.get(spec)


# --- Metrics ------------------------------------------------------------------------------------------
class MetricKind(enum.StrEnum):
    OLDEST_UNACKED_AGE = "oldest_unacked_age"  # gauge, seconds (max per step)
    UNDELIVERED_MESSAGES = "undelivered_messages"  # gauge, messages (backlog)
    DEAD_LETTER_BACKLOG = "dead_letter_backlog"  # gauge, messages waiting in the dead-letter subscription
    # gauge, seconds: the oldest message waiting in the dead-letter subscription, i.e. not yet
    # mirrored (the sync acks what it mirrored). Read apart from the sync, so a sync outage shows.
    DEAD_LETTER_OLDEST_AGE = "dead_letter_oldest_age"
    INSTANCE_COUNT = "instance_count"  # gauge, instances (mean per step)
    COMPLETION_LATENCY = "completion_latency"  # distribution, seconds, per step
    COMPLETED = "completed"  # count per step (ok outcomes)
    FAILED = "failed"  # count per step (failed outcomes: retried, dead-lettered or timed out)
    RECORDS = "records"  # count per step
    TOKENS = "tokens"  # count per step


GAUGE_METRICS = frozenset(
    {
        MetricKind.OLDEST_UNACKED_AGE,
        MetricKind.UNDELIVERED_MESSAGES,
        MetricKind.DEAD_LETTER_BACKLOG,
        MetricKind.DEAD_LETTER_OLDEST_AGE,
        MetricKind.INSTANCE_COUNT,
    }
)

# The latency histograms' bucket bounds, shared by every writer and reader: workloads/domain/histogram.py.


@dataclass(frozen=True)
class Distribution:
    """A histogram over LATENCY_BUCKET_BOUNDS (len(bucket_counts) == len(bounds) + 1)."""

    count: int
    sum: float
    bucket_counts: tuple[int, ...]
    bounds: tuple[float, ...] = LATENCY_BUCKET_BOUNDS


class RuntimeMetric(enum.StrEnum):
    """What the control plane reads of an observed runtime's own metrics (Cloud Monitoring's
    system metrics on GCP; docs/migration.md section 2). Each is one or more Google metric types,
    depending on the runtime."""

    OUTCOMES = "runtime_outcomes"  # Outcomes per step: executions (requests), errors among them
    LATENCY = "runtime_latency"  # distribution, seconds, per step (execution or request time)
    INSTANCE_TIME = "runtime_instance_time"  # instance-seconds per step (what the runtime bills)


@dataclass(frozen=True)
class Outcomes:
    """A step of RuntimeMetric.OUTCOMES: executions, and how many of them failed."""

    executions: float
    errors: float


@dataclass(frozen=True)
class Point:
    """One step of a series: `end` is the end of the step it aggregates (aligned to the step).
    `value` is a float for gauges and counts, a Distribution for latency."""

    end: datetime
    value: float | Distribution | Outcomes


@dataclass(frozen=True)
class WorkerReport:
    """What one worker instance observed during one interval (written in batches, never one
    point per job). `latency` is completion latency from ingestion to completion."""

    slug: str
    worker_pool: str
    interval_start: datetime
    interval_end: datetime
    completed: int
    failed: int
    records: int
    tokens: int
    latency: Distribution
    instance_id: str = ""


# The metrics made of the workers' reports: what `Metrics.report_rows` offers in one SELECT.
REPORT_METRICS: tuple[MetricKind, ...] = (
    MetricKind.COMPLETION_LATENCY,
    MetricKind.COMPLETED,
    MetricKind.FAILED,
    MetricKind.RECORDS,
    MetricKind.TOKENS,
)


@dataclass(frozen=True)
class ReportRows:
    """The REPORT_METRICS of a window as one SELECT on the control plane's own database (alias
    `using`), for a provider that keeps its raw data there: its columns, in order, are the class's
    slug, the step's end (timestamptz), completed, failed, records, tokens, the latency
    distribution's count and sum, then each of its LATENCY_BUCKET_BOUNDS + 1 bucket counts; one
    row per class and step for which `series()` would give a point of each of those metrics, with
    the same values."""

    using: str
    sql: str
    params: tuple


class Metrics(ABC):
    @abstractmethod
    def series(
        self,
        metric: MetricKind,
        targets: Sequence[MetricTarget],
        *,
        start: datetime,
        end: datetime,
        step_seconds: int = 60,
    ) -> dict[str, list[Point]]:
        """Points of one metric for ALL the given classes, keyed by slug, oldest first: exactly one
        provider call (one list_time_series on GCP) whatever the number of classes. Steps
        without data are absent (a gap, never a zero)."""

    def runtime_series(
        self,
        metric: RuntimeMetric,
        targets: Sequence[MetricTarget],
        *,
        start: datetime,
        end: datetime,
        step_seconds: int = 60,
    ) -> dict[str, list[Point]]:
        """Points of one of the observed runtimes' own metrics for the given classes (those whose
        runtime publishes it), keyed by slug, oldest first: one provider call per Google metric
        type and resource type, whatever the number of classes. A backend that has no such
        metrics (the local provider) answers nothing: the figure stays "no data"."""
        return {}

    def report_rows(
        self,
        targets: Sequence[MetricTarget],
        *,
        start: datetime,
        end: datetime,
        step_seconds: int = 60,
    ) -> ReportRows | None:
        """An optional capability: the REPORT_METRICS of the targets over [start, end) as ReportRows,
        a SELECT the poll folds into minute rollups where the rows are (one statement for the
        window instead of a series() call and its points per metric), or None where the data is
        not in the control plane's own PostgreSQL database (Cloud Monitoring, the local provider on
        SQLite): then the poll calls series() for each of them."""
        return None

    @abstractmethod
    def write_worker_report(self, report: WorkerReport) -> None:
        """Record a worker's counters and latency histogram (custom metrics on GCP)."""


@dataclass
class Providers:
    queue: Queue
    pools: WorkerPools
    metrics: Metrics
    name: str = ""
