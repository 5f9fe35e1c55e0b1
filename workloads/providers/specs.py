"""Build the ports' specs from workload classes: the one place that maps model fields to them."""

from workloads.providers.base import MetricTarget, PoolSpec, QueueSpec
from workloads.providers.labels import class_labels


def queue_spec(workload_class) -> QueueSpec:
    return QueueSpec(
        slug=workload_class.slug,
        topic=workload_class.topic,
        subscription=workload_class.subscription,
        dead_letter_topic=workload_class.dead_letter_topic,
        dead_letter_subscription=workload_class.dead_letter_subscription,
        completion_topic=workload_class.completion_topic,
        ack_deadline_seconds=workload_class.ack_deadline_seconds,
        max_delivery_attempts=workload_class.max_delivery_attempts,
        min_backoff_seconds=workload_class.min_backoff_seconds,
        max_backoff_seconds=workload_class.max_backoff_seconds,
        ordering=bool(workload_class.ordering_key_template),
        message_retention_seconds=workload_class.message_retention_seconds,
        labels=class_labels(slug=workload_class.slug, team=workload_class.owner_team, tier=workload_class.tier),
    )


def pool_spec(workload_class) -> PoolSpec:
    return PoolSpec(slug=workload_class.slug, worker_pool=workload_class.worker_pool)


def metric_target(workload_class) -> MetricTarget:
    return MetricTarget(
        slug=workload_class.slug,
        subscription=workload_class.subscription,
        dead_letter_subscription=workload_class.dead_letter_subscription,
        worker_pool=workload_class.worker_pool,
        runtime=workload_class.runtime,
        runtime_resource=workload_class.runtime_resource,
        # Callers that poll many classes select_related("environment"): no query per class.
        scope_project=workload_class.environment.monitoring_project if workload_class.environment_id else "",
    )
