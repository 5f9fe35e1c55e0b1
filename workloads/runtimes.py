"""Runtimes a workload class runs on, and what the control plane can observe of each, from where.

A class on `worker_pool` is provisioned, scaled and paused by us. Every other runtime is
*observed*: we measure it but never provision or scale it (teams keep it while they migrate, or as
an escape hatch). What can be observed differs per runtime, so each one lists its figures and
their source, with Google's own metric and resource types where Google publishes them; the class
page and the API show that list next to which figures actually arrived.

Pure data, no database: the model, the API, the screens, the docs and the tests read it.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from django.db import models


class Runtime(models.TextChoices):
    WORKER_POOL = "worker_pool", "Cloud Run worker pool (managed)"
    CLOUD_RUN_SERVICE = "cloud_run_service", "Cloud Run service (push subscription)"
    CLOUD_RUN_JOB = "cloud_run_job", "Cloud Run job"
    CLOUD_FUNCTIONS = "cloud_functions", "Cloud Run functions / Cloud Functions"
    GKE = "gke", "GKE workload"
    COMPUTE_ENGINE = "compute_engine", "Compute Engine VMs or managed instance group"
    CELERY = "celery", "Celery workers (any host)"
    CUSTOM = "custom", "Custom (own runtime control)"


class Figure(enum.StrEnum):
    """What the evidence is made of."""

    QUEUE_AGE = "queue_age"
    BACKLOG = "backlog"
    ACKS = "acks"
    EXECUTIONS = "executions"
    ERRORS = "errors"
    LATENCY = "latency"
    INSTANCE_TIME = "instance_time"
    COMPLETIONS = "completions"


class Source(enum.StrEnum):
    SUBSCRIPTION = "subscription"  # Cloud Monitoring: the Pub/Sub subscription the runtime consumes
    RUNTIME_METRICS = "runtime_metrics"  # Cloud Monitoring: the runtime's own system metrics
    WORKER_KIT = "worker_kit"  # the worker kit's reports (workloads/runtime), in any process
    CELERY_EVENTS = "celery_events"  # Celery's task events on its broker (manage.py observe_celery)
    POOL = "pool"  # the worker pool we run (instance count)


SOURCE_LABELS = {
    Source.SUBSCRIPTION: "Pub/Sub subscription metrics (Cloud Monitoring)",
    Source.RUNTIME_METRICS: "the runtime's own Cloud Monitoring metrics",
    Source.WORKER_KIT: "worker kit reports",
    Source.CELERY_EVENTS: "Celery task events (manage.py observe_celery)",
    Source.POOL: "the worker pool (Cloud Run Admin and Monitoring)",
}


@dataclass(frozen=True)
class Observation:
    figure: Figure
    source: Source
    metric_type: str = ""  # Google's metric type, for Cloud Monitoring sources
    resource_type: str = ""  # Google's monitored-resource type


@dataclass(frozen=True)
class RuntimeProfile:
    runtime: Runtime
    managed: bool  # provisioned, scaled and paused by the control plane
    resource_hint: str  # what `runtime_resource` names for this runtime
    observations: tuple[Observation, ...]

    def figures(self) -> dict[Figure, list[Observation]]:
        found: dict[Figure, list[Observation]] = {}
        for observation in self.observations:
            found.setdefault(observation.figure, []).append(observation)
        return found


# Any runtime fed by the class's Pub/Sub subscription: queue age, backlog and acks come from the
# subscription's own metrics, whoever consumes it.
_SUB = "pubsub_subscription"
SUBSCRIPTION_OBSERVATIONS = (
    Observation(
        Figure.QUEUE_AGE, Source.SUBSCRIPTION, "pubsub.googleapis.com/subscription/oldest_unacked_message_age", _SUB
    ),
    Observation(
        Figure.BACKLOG, Source.SUBSCRIPTION, "pubsub.googleapis.com/subscription/num_undelivered_messages", _SUB
    ),
    Observation(Figure.ACKS, Source.SUBSCRIPTION, "pubsub.googleapis.com/subscription/ack_message_count", _SUB),
)
# The worker kit reports completions, failures and latency from any process that runs it.
WORKER_KIT_OBSERVATIONS = (
    Observation(Figure.COMPLETIONS, Source.WORKER_KIT),
    Observation(Figure.ERRORS, Source.WORKER_KIT),
    Observation(Figure.LATENCY, Source.WORKER_KIT),
)


def _runtime_metrics(resource_type: str, *pairs: tuple[Figure, str]) -> tuple[Observation, ...]:
    return tuple(Observation(figure, Source.RUNTIME_METRICS, metric, resource_type) for figure, metric in pairs)


PROFILES: dict[Runtime, RuntimeProfile] = {
    Runtime.WORKER_POOL: RuntimeProfile(
        Runtime.WORKER_POOL,
        managed=True,
        resource_hint="the class's worker pool (its worker_pool field)",
        observations=SUBSCRIPTION_OBSERVATIONS
        + WORKER_KIT_OBSERVATIONS
        + (
            Observation(
                Figure.INSTANCE_TIME,
                Source.POOL,
                "run.googleapis.com/container/instance_count",
                "cloud_run_worker_pool",
            ),
        ),
    ),
    Runtime.CLOUD_RUN_SERVICE: RuntimeProfile(
        Runtime.CLOUD_RUN_SERVICE,
        managed=False,
        resource_hint="the service name",
        observations=SUBSCRIPTION_OBSERVATIONS
        + _runtime_metrics(
            "cloud_run_revision",
            (Figure.EXECUTIONS, "run.googleapis.com/request_count"),
            (Figure.ERRORS, "run.googleapis.com/request_count"),  # response_code_class 4xx/5xx
            (Figure.LATENCY, "run.googleapis.com/request_latencies"),
            (Figure.INSTANCE_TIME, "run.googleapis.com/container/billable_instance_time"),
        )
        + WORKER_KIT_OBSERVATIONS,
    ),
    Runtime.CLOUD_RUN_JOB: RuntimeProfile(
        Runtime.CLOUD_RUN_JOB,
        managed=False,
        resource_hint="the job name",
        observations=_runtime_metrics(
            "cloud_run_job",
            (Figure.EXECUTIONS, "run.googleapis.com/job/completed_execution_count"),
            (Figure.ERRORS, "run.googleapis.com/job/completed_execution_count"),  # result=failed
            (Figure.INSTANCE_TIME, "run.googleapis.com/container/billable_instance_time"),
        )
        + WORKER_KIT_OBSERVATIONS,
    ),
    Runtime.CLOUD_FUNCTIONS: RuntimeProfile(
        Runtime.CLOUD_FUNCTIONS,
        managed=False,
        resource_hint="the function name",
        observations=SUBSCRIPTION_OBSERVATIONS
        + _runtime_metrics(
            "cloud_function",
            (Figure.EXECUTIONS, "cloudfunctions.googleapis.com/function/execution_count"),
            (Figure.ERRORS, "cloudfunctions.googleapis.com/function/execution_count"),  # status != ok
            (Figure.LATENCY, "cloudfunctions.googleapis.com/function/execution_times"),
            (Figure.INSTANCE_TIME, "cloudfunctions.googleapis.com/function/instance_count"),
        )
        + WORKER_KIT_OBSERVATIONS,
    ),
    Runtime.GKE: RuntimeProfile(
        Runtime.GKE,
        managed=False,
        resource_hint="namespace/workload",
        observations=SUBSCRIPTION_OBSERVATIONS
        + _runtime_metrics(
            "k8s_container",
            (Figure.INSTANCE_TIME, "kubernetes.io/container/cpu/core_usage_time"),
            (Figure.ERRORS, "kubernetes.io/container/restart_count"),  # listed, not read
        )
        + WORKER_KIT_OBSERVATIONS,
    ),
    Runtime.COMPUTE_ENGINE: RuntimeProfile(
        Runtime.COMPUTE_ENGINE,
        managed=False,
        resource_hint="the managed instance group (or an instance name prefix)",
        observations=SUBSCRIPTION_OBSERVATIONS
        + _runtime_metrics(
            "gce_instance",
            (Figure.INSTANCE_TIME, "compute.googleapis.com/instance/uptime"),
        )
        + WORKER_KIT_OBSERVATIONS,
    ),
    Runtime.CELERY: RuntimeProfile(
        Runtime.CELERY,
        managed=False,
        resource_hint="the Celery task name",
        observations=(
            Observation(Figure.EXECUTIONS, Source.CELERY_EVENTS),
            Observation(Figure.COMPLETIONS, Source.CELERY_EVENTS),
            Observation(Figure.ERRORS, Source.CELERY_EVENTS),
            Observation(Figure.LATENCY, Source.CELERY_EVENTS),
            Observation(Figure.INSTANCE_TIME, Source.CELERY_EVENTS),  # task runtime
        ),
    ),
    Runtime.CUSTOM: RuntimeProfile(
        Runtime.CUSTOM,
        managed=False,
        resource_hint="anything that names it for people",
        observations=SUBSCRIPTION_OBSERVATIONS + WORKER_KIT_OBSERVATIONS,
    ),
}


# Google metric types a runtime publishes that the control plane lists but does not read (a
# container restart is not an execution's outcome).
UNREAD_METRIC_TYPES = frozenset({"kubernetes.io/container/restart_count"})
# What the poll reads of a runtime's own metrics (workloads.providers.base.RuntimeMetric values),
# and the figure each one gives.
RUNTIME_METRIC_FIGURES = {
    "runtime_outcomes": Figure.EXECUTIONS,
    "runtime_latency": Figure.LATENCY,
    "runtime_instance_time": Figure.INSTANCE_TIME,
}


def reads_runtime_metrics(runtime: str, runtime_metric: str) -> bool:
    """Whether the runtime publishes (and the control plane reads) that one of its own metrics."""
    figure = RUNTIME_METRIC_FIGURES[runtime_metric]
    return any(
        o.figure == figure and o.source == Source.RUNTIME_METRICS and o.metric_type not in UNREAD_METRIC_TYPES
        for o in PROFILES[Runtime(runtime)].observations
    )


def profile(runtime: str) -> RuntimeProfile:
    return PROFILES[Runtime(runtime)]


def is_managed(runtime: str) -> bool:
    return profile(runtime).managed


def consumes_subscription(runtime: str) -> bool:
    return any(o.source == Source.SUBSCRIPTION for o in profile(runtime).observations)


# --- the migration switch -------------------------------------------------------------------------------
ROUTE_BUCKETS = 10_000  # hundredths of a percent


def route_bucket(idempotency_key: str) -> int:
    """A stable bucket in [0, ROUTE_BUCKETS) for a key: the same on every process and release
    (sha256, not Python's salted hash), so a key stays on its side while the share only grows."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % ROUTE_BUCKETS


def routes_to_target(idempotency_key: str, percent: int) -> bool:
    """Whether a migration plan routing `percent` % of the events sends this key to its target."""
    return route_bucket(idempotency_key) < percent * (ROUTE_BUCKETS // 100)
