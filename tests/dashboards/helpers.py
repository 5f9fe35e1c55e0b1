"""Test helpers for the dashboards (view and browser tests): demo telemetry fed through the real
poll, and an action kind whose steps the tests control."""

from contextlib import contextmanager

from workloads.errors import ApplicationError
from workloads.services.actions import ActionHandler, PlannedStep

STALE_SLUG = "batch-enrichment"  # its metrics stopped 40 minutes ago
BREACHED_SLUG = "policy-evaluation"  # queue age 40 s against a 10 s SLO, every minute
HEALTHY_SLUG = "document-processing"
SILENT_SLUG = "indexing-pipeline"  # never reported anything


def feed_demo_telemetry(now, *, window_minutes: int = 180):
    """Poll three hours of metrics for the demo fleet through a Metrics double (the real poll,
    rollups, live values and SLO evaluation run; only the provider's answers are made up)."""
    from datetime import timedelta

    from tests.workloads.telemetry_doubles import FakeMetrics, distribution, installed_metrics
    from workloads.providers.base import MetricKind
    from workloads.services.polling import metrics_poll
    from workloads.services.slo_evaluation import slo_alerts_evaluate

    stopped_at = now - timedelta(minutes=40)

    def per_class(values: dict):
        def value(slug, end):
            if slug == SILENT_SLUG or (slug == STALE_SLUG and end > stopped_at):
                return None
            return values.get(slug)

        return value

    fast = distribution([0.4] * 90 + [2.5] * 10)
    slow = distribution([4.0] * 80 + [9.0] * 20)
    fake = FakeMetrics()
    fake.set(MetricKind.OLDEST_UNACKED_AGE, per_class({HEALTHY_SLUG: 45.0, BREACHED_SLUG: 40.0, STALE_SLUG: 600.0}))
    fake.set(
        MetricKind.UNDELIVERED_MESSAGES, per_class({HEALTHY_SLUG: 1234.0, BREACHED_SLUG: 80.0, STALE_SLUG: 5000.0})
    )
    fake.set(MetricKind.DEAD_LETTER_BACKLOG, per_class({HEALTHY_SLUG: 3.0, BREACHED_SLUG: 0.0, STALE_SLUG: 12.0}))
    fake.set(MetricKind.INSTANCE_COUNT, per_class({HEALTHY_SLUG: 2.0, BREACHED_SLUG: 1.0, STALE_SLUG: 4.0}))
    fake.set(MetricKind.COMPLETED, per_class({HEALTHY_SLUG: 50.0, BREACHED_SLUG: 30.0, STALE_SLUG: 100.0}))
    fake.set(MetricKind.FAILED, per_class({HEALTHY_SLUG: 0.0, BREACHED_SLUG: 0.0, STALE_SLUG: 1.0}))
    fake.set(MetricKind.RECORDS, per_class({HEALTHY_SLUG: 50.0, BREACHED_SLUG: 30.0, STALE_SLUG: 400.0}))
    fake.set(MetricKind.TOKENS, per_class({STALE_SLUG: 20000.0}))
    fake.set(MetricKind.COMPLETION_LATENCY, per_class({HEALTHY_SLUG: fast, BREACHED_SLUG: slow, STALE_SLUG: fast}))
    with installed_metrics(fake):
        metrics_poll(now=now, window_minutes=window_minutes)
    slo_alerts_evaluate(now=now)


SLOW_KIND = "test_ui_steps"


class StepsHandler(ActionHandler):
    """An action kind for UI tests: one step per item of `parameters["items"]`, each taking
    `parameters["interval"]` seconds; items starting with "bad" fail."""

    kind = SLOW_KIND
    atomic_steps = False

    def step_interval(self, action):
        return float(action.parameters.get("interval", 0))

    def plan(self, action):
        return [PlannedStep(key=item) for item in action.parameters["items"]]

    def run_step(self, action, step):
        if step.key.startswith("bad"):
            raise ApplicationError(f"{step.key} refused the change")
        return {"applied": step.key}


@contextmanager
def registered_steps_handler():
    from workloads.services import actions as engine

    previous = engine._HANDLERS.get(SLOW_KIND)
    engine.register_handler(StepsHandler())
    try:
        yield
    finally:
        if previous is None:
            engine._HANDLERS.pop(SLOW_KIND, None)


def request_steps_action(*, actor, items, workload_class=None, interval=0.0, target="pools"):
    from workloads.services.actions import action_request

    return action_request(
        kind=SLOW_KIND,
        actor=actor,
        reason="UI test",
        workload_class=workload_class,
        target=target,
        parameters={"items": list(items), "interval": interval},
        enqueue=False,
    )
