"""`/metrics`: the fleet in Prometheus text format, for a bearer token of a viewer or above (a
token limited to ingestion or deployments is refused). Metric names and labels: docs/operations.md,
"Prometheus and Grafana".

Gauges are read at scrape time through the same selector the fleet overview uses; counters and the
latency histogram from each class's running totals (ClassCounters), which only ever grow. Both go
into a registry built per request: nothing is kept in process memory, so every web worker answers
the same. The response is gzip-compressed when the scraper accepts it (Prometheus does).
"""

import gc

from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from controlplane.roles import Role, has_role
from workloads.selectors import telemetry as selectors
from workloads.selectors.exports import HOLD_KINDS, ClassSignals, class_signals, cumulative_latency_buckets
from workloads.services.tokens import api_token_authenticate, token_allows


class FleetCollector:
    def __init__(self, *, now):
        self.now = now

    def collect(self):
        rows = selectors.fleet_overview(now=self.now)
        signals = class_signals()
        gauges = {
            "queue_age": GaugeMetricFamily(
                "controlplane_queue_oldest_unacked_age_seconds",
                "Age of the oldest unacknowledged message in the class's subscription (latest minute).",
                labels=["workload_class"],
            ),
            "backlog": GaugeMetricFamily(
                "controlplane_queue_backlog_messages",
                "Undelivered messages (latest minute).",
                labels=["workload_class"],
            ),
            "dead_letters": GaugeMetricFamily(
                "controlplane_dead_letter_backlog_messages",
                "Messages waiting in the dead-letter subscription (latest minute).",
                labels=["workload_class"],
            ),
            "instances": GaugeMetricFamily(
                "controlplane_worker_instances", "Worker pool instances (latest minute).", labels=["workload_class"]
            ),
            "target": GaugeMetricFamily(
                "controlplane_worker_instances_target",
                "The instance count the control plane last set on the pool (scale, pause or restore).",
                labels=["workload_class"],
            ),
            "holds": GaugeMetricFamily(
                "controlplane_pool_hold",
                "1 while the hold is on the pool: pause (at 0), incident (incident mode, at 0), override "
                "(held at an operator's count); 0 otherwise.",
                labels=["workload_class", "hold"],
            ),
            "slo_threshold": GaugeMetricFamily(
                "controlplane_slo_threshold_seconds",
                "The SLO's threshold (queue age, completion latency): draw it beside the measured value.",
                labels=["workload_class", "slo"],
            ),
            "slo_target": GaugeMetricFamily(
                "controlplane_slo_target_ratio",
                "The SLO's target: the share of events (or minutes) that must be good, e.g. 0.99.",
                labels=["workload_class", "slo"],
            ),
            "deployed": GaugeMetricFamily(
                "controlplane_last_deployment_timestamp_seconds",
                "When the class's newest recorded deployment happened (absent when none is kept); "
                "changes() of it marks deployments on Grafana panels.",
                labels=["workload_class"],
            ),
            "info": GaugeMetricFamily(
                "controlplane_class_info",
                "Always 1: the class's owner team and tier.",
                labels=["workload_class", "owner_team", "tier"],
            ),
            "budget": GaugeMetricFamily(
                "controlplane_slo_error_budget_remaining_ratio",
                "Share of the SLO's error budget left over its window (negative when overspent).",
                labels=["workload_class", "slo"],
            ),
            "burn": GaugeMetricFamily(
                "controlplane_slo_burn_rate",
                "Error-budget burn rate per alert window (1 = spending the budget exactly over the SLO window).",
                labels=["workload_class", "slo", "window"],
            ),
            "alerts": GaugeMetricFamily(
                "controlplane_slo_alerts_active", "Open burn-rate alerts.", labels=["workload_class", "severity"]
            ),
            "age": GaugeMetricFamily(
                "controlplane_metrics_age_seconds",
                "Poll lag: how old the class's newest metric sample is (absent when none ever arrived).",
                labels=["workload_class"],
            ),
            "status": GaugeMetricFamily(
                "controlplane_class_status",
                "1 for the class's current status (ok, at_risk, breached, stale, no_data), 0 for the others.",
                labels=["workload_class", "status"],
            ),
        }
        totals = _Totals()
        for row in rows:
            slug = row.workload_class.slug
            signal = signals.get(row.workload_class.pk, ClassSignals())
            totals.add(slug, signal)
            gauges["info"].add_metric([slug, row.workload_class.owner_team, row.workload_class.tier], 1.0)
            if signal.target_instances is not None:
                gauges["target"].add_metric([slug], signal.target_instances)
            for hold in HOLD_KINDS:
                gauges["holds"].add_metric([slug, hold], 1.0 if hold in signal.holds else 0.0)
            for key, value in (
                ("queue_age", row.queue_age_seconds),
                ("backlog", row.backlog),
                ("dead_letters", row.dead_letter_backlog),
                ("instances", row.instances),
                ("age", row.metric_age_seconds),
            ):
                if value is not None:
                    gauges[key].add_metric([slug], value)
            if signal.last_deployed_at is not None:
                gauges["deployed"].add_metric([slug], signal.last_deployed_at.timestamp())
            for card in row.slo_cards:
                if card.slo.threshold_seconds is not None:
                    gauges["slo_threshold"].add_metric([slug, card.slo.kind], card.slo.threshold_seconds)
                if card.slo.target_percent is not None:
                    gauges["slo_target"].add_metric([slug, card.slo.kind], float(card.slo.target_percent) / 100)
                if card.budget_remaining_percent is not None:
                    gauges["budget"].add_metric([slug, card.slo.kind], card.budget_remaining_percent / 100)
                for window, rate in card.burn_rates.items():
                    gauges["burn"].add_metric([slug, card.slo.kind, window], rate)
            for severity in ("page", "ticket"):
                gauges["alerts"].add_metric(
                    [slug, severity], sum(1 for a in row.active_alerts if a.severity == severity)
                )
            for status in selectors.STATUSES:
                gauges["status"].add_metric([slug, status], 1.0 if row.status == status else 0.0)
        yield from gauges.values()
        yield from totals.families()

        last_run = GaugeMetricFamily(
            "controlplane_metric_poll_last_run_timestamp_seconds",
            "When each metric was last polled.",
            labels=["metric"],
        )
        last_ok = GaugeMetricFamily(
            "controlplane_metric_poll_ok", "1 when the metric's last poll succeeded.", labels=["metric"]
        )
        for metric, run in selectors.latest_poll_runs().items():
            if run is not None:
                last_run.add_metric([metric], run.started_at.timestamp())
                last_ok.add_metric([metric], 1.0 if run.ok else 0.0)
        yield last_run
        yield last_ok


class _Totals:
    """The counters and the latency histogram, from each class's running totals. A class with no
    totals yet exports zeros, so a series exists from the class's first scrape on (rate() needs
    two samples)."""

    def __init__(self):
        labels = ["workload_class"]
        self.counters = {
            name: CounterMetricFamily(f"controlplane_{name}", help_text, labels=labels)
            for name, help_text in (
                ("completed", "Units of work completed (each success once)."),
                ("failed", "Failed attempts (retries included)."),
                ("dead_lettered", "Messages that reached the dead-letter subscription (mirrored)."),
                ("records", "Records processed, as the worker reported them."),
                ("tokens", "Tokens used, as the worker reported them."),
                ("instance_seconds", "Worker pool instance-seconds."),
            )
        }
        self.cost = CounterMetricFamily(
            "controlplane_cost",
            "Cost at the class's rates (compute, records, tokens), in the rates' currency.",
            labels=["workload_class", "currency"],
        )
        self.latency = HistogramMetricFamily(
            "controlplane_completion_latency_seconds",
            "Completion latency from ingestion to result; le counts completions below the bound.",
            labels=labels,
        )

    def add(self, slug: str, signal: ClassSignals) -> None:
        row = signal.counters
        for name, family in self.counters.items():
            family.add_metric([slug], getattr(row, name) if row else 0)
        if row is not None and row.cost_currency:
            self.cost.add_metric([slug, row.cost_currency], float(row.cost))
        buckets = cumulative_latency_buckets(row.latency_buckets if row else [])
        self.latency.add_metric(
            [slug],
            buckets=[(_le(bound), count) for bound, count in buckets],
            sum_value=row.latency_sum if row else 0.0,
        )

    def families(self):
        yield from self.counters.values()
        yield self.cost
        yield self.latency


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _unauthorized(message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@require_GET
@gzip_page
def prometheus_metrics(request):
    parts = request.headers.get("Authorization", "").split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return _unauthorized("Send an API token: Authorization: Bearer <token>.")
    token = api_token_authenticate(parts[1])
    if token is None:
        return _unauthorized("Invalid, expired or revoked token.")
    if not has_role(token.user, Role.VIEWER) or not token_allows(token, method="GET", scope_kind="api"):
        return HttpResponse(
            "This token may not read metrics: it needs a viewer (or higher) user and the 'read' or '*' scope.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(now=timezone.now()))
    return HttpResponse(_without_cyclic_gc(generate_latest, registry), content_type=CONTENT_TYPE_LATEST)


def _without_cyclic_gc(build, *args):
    """A scrape of 1,000 classes allocates millions of small objects (samples, label dicts) while
    thousands of model rows are alive, so the cyclic collector ran again and again over all of them
    and the time per class grew with the fleet (bench 'exports': 11.7 vs 7.6 ms per class at 1,000
    classes). Nothing built here forms cycles; reference counting frees it all. Other threads of the
    process lose the cyclic collector for the scrape's duration only."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return build(*args)
    finally:
        if enabled:
            gc.enable()
