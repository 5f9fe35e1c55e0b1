import copy
from datetime import time
from decimal import Decimal

import factory

from workloads.models import CostRates, SchedulePolicy, Slo, WorkloadClass

DOCUMENT_SCHEMA = {
    "type": "object",
    "required": ["tenant_id", "document_id", "revision"],
    "properties": {
        "tenant_id": {"type": "string", "minLength": 1},
        "document_id": {"type": "string", "minLength": 1},
        "revision": {"type": "integer", "minimum": 1},
        "note": {"type": "string"},
    },
}


def class_payload(**overrides) -> dict:
    """A valid body for POST /api/v1/classes/ (JSON-ready); override any field."""
    body = {
        "slug": "doc-jobs",
        "name": "Document jobs",
        "owner_team": "docs",
        "tier": "standard",
        "timeout_tier": "standard",
        "max_delivery_attempts": 5,
        "min_backoff_seconds": 10,
        "max_backoff_seconds": 600,
        "payload_schema": copy.deepcopy(DOCUMENT_SCHEMA),
        "idempotency_key_template": "{tenant_id}:{document_id}:{revision}",
        "dedup_ttl_seconds": 3600,
        "min_instances": 0,
        "max_instances": 5,
        "slos": [
            {"kind": "queue_age", "percentile": "95", "threshold_seconds": 60, "target_percent": "99.5"},
            {"kind": "success_ratio", "target_percent": "99"},
        ],
        "schedules": [
            {
                "name": "nightly",
                "kind": "nightly",
                "days_of_week": [0, 1, 2, 3, 4, 5, 6],
                "start_time": "22:00",
                "end_time": "06:00",
                "timezone": "Europe/Paris",
                "min_instances": 0,
                "max_instances": 2,
            }
        ],
    }
    body.update(overrides)
    return body


class CostRatesFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CostRates
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"rates-{n}")
    vcpu_second = Decimal("0.000018")
    gib_second = Decimal("0.000002")
    per_record = Decimal("0.000001")
    per_1k_tokens = Decimal("0.0001")


class WorkloadClassFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkloadClass

    slug = factory.Sequence(lambda n: f"class-{n:03d}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    owner_team = "platform"
    payload_schema = factory.LazyFunction(lambda: copy.deepcopy(DOCUMENT_SCHEMA))
    idempotency_key_template = "{tenant_id}:{document_id}:{revision}"
    cost_rates = factory.SubFactory(CostRatesFactory)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        obj = model_class(*args, **kwargs)
        obj.full_clean()  # factories build only valid classes, like the services
        obj.save()
        return obj


class SloFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Slo

    workload_class = factory.SubFactory(WorkloadClassFactory)
    kind = "success_ratio"
    target_percent = Decimal("99")


class SchedulePolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SchedulePolicy

    workload_class = factory.SubFactory(WorkloadClassFactory)
    name = factory.Sequence(lambda n: f"window-{n}")
    days_of_week = factory.LazyFunction(lambda: [0, 1, 2, 3, 4, 5, 6])
    start_time = time(22, 0)
    end_time = time(6, 0)
    timezone = "UTC"
    min_instances = 0
    max_instances = 2
