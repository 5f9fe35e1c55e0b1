"""The demo fleet: the four typical workloads, with realistic contracts, SLOs and schedules, in
the 'prod' environment, and a smaller copy of two of them in 'staging' (no schedules, at most two
instances; demo/traffic.py sends them a trickle of the same traffic).

`seed_demo_fleet` is idempotent: it creates what is missing and brings existing demo classes
back to these definitions through the same services an admin uses (so the first run is audited
and later runs, changing nothing, write nothing).
"""

from datetime import time
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from workloads.models import CostRates, Environment, WorkloadClass
from workloads.services.audit import snapshot
from workloads.services.classes import (
    cost_rates_create,
    cost_rates_update,
    workload_class_create,
    workload_class_snapshot,
    workload_class_update,
)
from workloads.services.environments import environment_create

# Cloud Run instance-based billing, tier 1 region list prices (rounded), plus per-record and
# model-token prices for the work the handlers call out to.
DEMO_COST_RATES = [
    {
        "name": "cloud-run-tier1",
        "description": "Cloud Run worker pools, tier-1 region, instance-based billing",
        "currency": "USD",
        "vcpu_second": Decimal("0.000018"),
        "gib_second": Decimal("0.000002"),
        "per_record": Decimal("0.000001"),
        "per_1k_tokens": Decimal("0"),
    },
    {
        "name": "cloud-run-tier1-llm",
        "description": "Cloud Run tier-1 plus a hosted model for enrichment",
        "currency": "USD",
        "vcpu_second": Decimal("0.000018"),
        "gib_second": Decimal("0.000002"),
        "per_record": Decimal("0.000004"),
        "per_1k_tokens": Decimal("0.00015"),
    },
]

_WEEKDAYS = [0, 1, 2, 3, 4]
_WEEKEND = [5, 6]
_EVERY_DAY = [0, 1, 2, 3, 4, 5, 6]

DEMO_CLASSES = [
    {
        "fields": {
            "slug": "document-processing",
            "name": "Document processing",
            "owner_team": "docs-platform",
            "description": "Parses uploaded documents: text extraction, word and section counts.",
            "tier": "standard",
            "timeout_tier": "standard",
            "max_concurrency": 8,
            "max_delivery_attempts": 5,
            "min_backoff_seconds": 10,
            "max_backoff_seconds": 300,
            "payload_schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["tenant_id", "document_id", "revision", "content_type"],
                "properties": {
                    "tenant_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "document_id": {"type": "string", "minLength": 1, "maxLength": 128},
                    "revision": {"type": "integer", "minimum": 1},
                    "content_type": {"type": "string", "enum": ["application/pdf", "text/plain", "text/html"]},
                    "title": {"type": "string", "maxLength": 300},
                    "content": {"type": "string", "maxLength": 200000},
                    "submitted_at": {"type": "string", "format": "date-time"},
                    "priority": {"type": "string", "enum": ["low", "normal", "high"], "default": "normal"},
                },
                "additionalProperties": False,
            },
            "idempotency_key_template": "{tenant_id}:{document_id}:{revision}",
            "dedup_ttl_seconds": 86400,
            "min_instances": 1,
            "max_instances": 12,
            "throughput_per_instance": 4.0,
            "drain_target_seconds": 120,
            "vcpu_per_instance": Decimal("1"),
            "memory_gib_per_instance": Decimal("2"),
            "cost_rates": "cloud-run-tier1",
        },
        "slos": [
            {
                "kind": "queue_age",
                "percentile": Decimal("95"),
                "threshold_seconds": 120.0,
                "target_percent": Decimal("99"),
                "window_days": 28,
            },
            {
                "kind": "completion_latency",
                "percentile": Decimal("95"),
                "threshold_seconds": 60.0,
                "target_percent": Decimal("99.5"),
                "window_days": 28,
            },
            {"kind": "success_ratio", "target_percent": Decimal("99"), "window_days": 28},
        ],
        "schedules": [
            {
                "name": "nightly",
                "kind": "nightly",
                "days_of_week": _EVERY_DAY,
                "start_time": time(22, 0),
                "end_time": time(6, 0),
                "timezone": "Europe/Paris",
                "min_instances": 0,
                "max_instances": 4,
                "priority": 0,
            },
            {
                "name": "weekend",
                "kind": "weekend",
                "days_of_week": _WEEKEND,
                "start_time": time(0, 0),
                "end_time": time(0, 0),
                "timezone": "Europe/Paris",
                "min_instances": 0,
                "max_instances": 3,
                "priority": 10,
            },
        ],
    },
    {
        "fields": {
            "slug": "indexing-pipeline",
            "name": "Indexing pipeline",
            "owner_team": "search",
            "description": "Builds inverted-index entries for changed documents, in order per document.",
            "tier": "standard",
            "timeout_tier": "interactive",
            "max_concurrency": 16,
            "max_delivery_attempts": 10,
            "min_backoff_seconds": 5,
            "max_backoff_seconds": 120,
            "payload_schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["index", "document_id", "version", "operation"],
                "properties": {
                    "index": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,62}$"},
                    "document_id": {"type": "string", "minLength": 1, "maxLength": 128},
                    "version": {"type": "integer", "minimum": 0},
                    "operation": {"type": "string", "enum": ["upsert", "delete"]},
                    "text": {"type": "string", "maxLength": 100000},
                    "language": {"type": "string", "default": "en"},
                },
                "additionalProperties": False,
            },
            "idempotency_key_template": "{index}:{document_id}:{version}",
            "ordering_key_template": "{index}:{document_id}",
            "dedup_ttl_seconds": 3600,
            "min_instances": 1,
            "max_instances": 8,
            "throughput_per_instance": 20.0,
            "drain_target_seconds": 60,
            "vcpu_per_instance": Decimal("1"),
            "memory_gib_per_instance": Decimal("1"),
            "cost_rates": "cloud-run-tier1",
        },
        "slos": [
            {
                "kind": "queue_age",
                "percentile": Decimal("99"),
                "threshold_seconds": 300.0,
                "target_percent": Decimal("99.5"),
                "window_days": 28,
            },
            {
                "kind": "completion_latency",
                "percentile": Decimal("95"),
                "threshold_seconds": 30.0,
                "target_percent": Decimal("99"),
                "window_days": 28,
            },
        ],
        "schedules": [
            {
                "name": "weekend",
                "kind": "weekend",
                "days_of_week": _WEEKEND,
                "start_time": time(0, 0),
                "end_time": time(0, 0),
                "timezone": "UTC",
                "min_instances": 0,
                "max_instances": 2,
                "priority": 0,
            },
        ],
    },
    {
        "fields": {
            "slug": "batch-enrichment",
            "name": "Batch enrichment",
            "owner_team": "data-eng",
            "description": "Enriches CRM records from reference data and a model; cheap to delay.",
            "tier": "deferrable",
            "timeout_tier": "batch",
            "max_concurrency": 4,
            "max_delivery_attempts": 5,
            "min_backoff_seconds": 30,
            "max_backoff_seconds": 600,
            "payload_schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["batch_id", "record_id", "country"],
                "properties": {
                    "batch_id": {"type": "string", "minLength": 1},
                    "record_id": {"type": "string", "minLength": 1},
                    "country": {"type": "string", "enum": ["de", "fr", "gb", "us", "jp", "br"]},
                    "company_name": {"type": "string"},
                    "domain": {"type": "string"},
                    "employees": {"type": "integer", "minimum": 0},
                },
                "additionalProperties": True,
            },
            "idempotency_key_template": "{batch_id}:{record_id}",
            "dedup_ttl_seconds": 7 * 86400,
            "min_instances": 0,
            "max_instances": 6,
            "throughput_per_instance": 2.0,
            "drain_target_seconds": 3600,
            "vcpu_per_instance": Decimal("2"),
            "memory_gib_per_instance": Decimal("4"),
            "cost_rates": "cloud-run-tier1-llm",
        },
        "slos": [
            {
                "kind": "completion_latency",
                "percentile": Decimal("95"),
                "threshold_seconds": 1800.0,
                "target_percent": Decimal("95"),
                "window_days": 28,
            },
            {"kind": "success_ratio", "target_percent": Decimal("98"), "window_days": 28},
        ],
        "schedules": [
            # Batch work runs when capacity is cheap and the other classes are quiet.
            {
                "name": "nightly",
                "kind": "nightly",
                "days_of_week": _EVERY_DAY,
                "start_time": time(20, 0),
                "end_time": time(7, 0),
                "timezone": "America/New_York",
                "min_instances": 1,
                "max_instances": 20,
                "priority": 0,
            },
            {
                "name": "weekend",
                "kind": "weekend",
                "days_of_week": _WEEKEND,
                "start_time": time(0, 0),
                "end_time": time(0, 0),
                "timezone": "America/New_York",
                "min_instances": 1,
                "max_instances": 20,
                "priority": 10,
            },
        ],
    },
    {
        "fields": {
            "slug": "policy-evaluation",
            "name": "Async policy evaluation",
            "owner_team": "trust-safety",
            "description": "Evaluates access and content policies for requests; never paused.",
            "tier": "critical",
            "timeout_tier": "interactive",
            "max_concurrency": 32,
            "max_delivery_attempts": 5,
            "min_backoff_seconds": 1,
            "max_backoff_seconds": 30,
            "payload_schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": ["tenant_id", "request_id", "policy", "subject"],
                "properties": {
                    "tenant_id": {"type": "string", "minLength": 1},
                    "request_id": {"type": "string", "minLength": 1},
                    "policy": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "subject": {"type": "object"},
                    "requested_at": {"type": "string", "format": "date-time"},
                },
                "additionalProperties": False,
            },
            "idempotency_key_template": "{tenant_id}:{request_id}",
            "dedup_ttl_seconds": 3600,
            "min_instances": 2,
            "max_instances": 20,
            "throughput_per_instance": 50.0,
            "drain_target_seconds": 15,
            "vcpu_per_instance": Decimal("1"),
            "memory_gib_per_instance": Decimal("0.5"),
            "cost_rates": "cloud-run-tier1",
        },
        "slos": [
            {
                "kind": "queue_age",
                "percentile": Decimal("99"),
                "threshold_seconds": 10.0,
                "target_percent": Decimal("99.9"),
                "window_days": 28,
            },
            {
                "kind": "completion_latency",
                "percentile": Decimal("99"),
                "threshold_seconds": 5.0,
                "target_percent": Decimal("99.9"),
                "window_days": 28,
            },
            {"kind": "success_ratio", "target_percent": Decimal("99.5"), "window_days": 28},
        ],
        "schedules": [
            {
                "name": "weekday-daytime",
                "kind": "custom",
                "days_of_week": _WEEKDAYS,
                "start_time": time(8, 0),
                "end_time": time(20, 0),
                "timezone": "Europe/London",
                "min_instances": 3,
                "max_instances": 20,
                "priority": 0,
            },
        ],
    },
]

DEMO_SLUGS = [definition["fields"]["slug"] for definition in DEMO_CLASSES]
STAGING_COPIES = ("document-processing", "batch-enrichment")
STAGING_SLUGS = [f"{slug}-staging" for slug in STAGING_COPIES]


def demo_environments() -> list[dict]:
    """prod runs in the deployment's project; staging in a project of its own, which is also its
    own Monitoring scoping project."""
    project, region = settings.GOOGLE_CLOUD_PROJECT, settings.GOOGLE_CLOUD_REGION
    staging_project = f"{project[:22]}-staging"
    return [
        {
            "slug": "prod",
            "name": "Production",
            "projects": [project],
            "regions": [region],
            "monitoring_project": project,
        },
        {
            "slug": "staging",
            "name": "Staging",
            "projects": [staging_project],
            "regions": [region],
            "monitoring_project": staging_project,
        },
    ]


def _staging_copy(definition: dict) -> dict:
    fields = dict(definition["fields"])
    fields.update(
        slug=f"{fields['slug']}-staging",
        name=f"{fields['name']} (staging)",
        min_instances=0,
        max_instances=2,
    )
    return {"fields": fields, "slos": definition["slos"], "schedules": [], "environment": "staging"}


def demo_class_definitions(*, staging: bool) -> list[dict]:
    """Every demo class with the environment it belongs to."""
    prod = [{**definition, "environment": "prod"} for definition in DEMO_CLASSES]
    if not staging:
        return prod
    return prod + [_staging_copy(d) for d in DEMO_CLASSES if d["fields"]["slug"] in STAGING_COPIES]


@transaction.atomic
def seed_demo_fleet(*, actor=None, staging: bool = False) -> dict[str, str]:
    """Create or restore the demo fleet in 'prod' (and with `staging`, as `make run` does, the
    smaller copy in 'staging'); returns {name: "created" | "updated" | "unchanged"}."""
    outcome = {}
    for definition in DEMO_COST_RATES:
        existing = CostRates.objects.filter(name=definition["name"]).first()
        if existing is None:
            cost_rates_create(actor=actor, fields=dict(definition))
            outcome[definition["name"]] = "created"
        else:
            before = snapshot(existing)
            updated = cost_rates_update(actor=actor, cost_rates=existing, fields=dict(definition))
            outcome[definition["name"]] = "unchanged" if snapshot(updated) == before else "updated"
    for definition in demo_environments():
        if definition["slug"] == "staging" and not staging:
            continue
        if not Environment.objects.filter(slug=definition["slug"]).exists():
            environment_create(actor=actor, fields=definition)
            outcome[f"environment {definition['slug']}"] = "created"
    for definition in demo_class_definitions(staging=staging):
        fields = dict(definition["fields"])
        fields["cost_rates"] = CostRates.objects.get(name=fields["cost_rates"])
        fields["environment"] = Environment.objects.get(slug=definition["environment"])
        slug = fields["slug"]
        existing = WorkloadClass.objects.filter(slug=slug).first()
        if existing is None:
            # `make run` provisions the whole demo fleet right after seeding (manage.py provision).
            workload_class_create(
                actor=actor,
                fields=fields,
                slos=definition["slos"],
                schedules=definition["schedules"],
                provision=False,
            )
            outcome[slug] = "created"
        else:
            before = workload_class_snapshot(existing)
            updated = workload_class_update(
                actor=actor,
                workload_class=existing,
                fields=fields,
                slos=definition["slos"],
                schedules=definition["schedules"],
                provision=False,
            )
            outcome[slug] = "unchanged" if workload_class_snapshot(updated) == before else "updated"
    return outcome
