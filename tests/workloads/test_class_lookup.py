"""The ingestion endpoint's class lookup (`class_get_by_slug`, SQL compiled once): it must load a
class exactly as the ORM does, on PostgreSQL and on SQLite (`make run`)."""

from decimal import Decimal

import pytest

from tests.factories import CostRatesFactory, WorkloadClassFactory
from workloads.models import WorkloadClass
from workloads.selectors.classes import class_get_by_slug

DATABASES = ["default", "contract_sqlite"]
pytestmark = pytest.mark.django_db(databases=DATABASES)


def _field_values(workload_class: WorkloadClass) -> dict:
    return {field.attname: getattr(workload_class, field.attname) for field in WorkloadClass._meta.concrete_fields}


@pytest.mark.parametrize("using", DATABASES)
def test_the_class_loads_as_the_orm_loads_it(using):
    rates = CostRatesFactory.build(name="lookup-rates")
    rates.save(using=using)
    made = WorkloadClassFactory.build(
        slug="lookup-class",
        cost_rates=rates,
        payload_schema={"type": "object", "properties": {"n": {"type": "integer", "default": 3}}},
        backoff_jitter=False,
        shed_load_when_paused=True,
        throughput_per_instance=12.5,
        vcpu_per_instance=Decimal("0.5"),
        memory_gib_per_instance=Decimal("1.25"),
        ordering_key_template="{n}",
    )
    made.save(using=using)
    WorkloadClassFactory.build(slug="lookup-other", cost_rates=rates).save(using=using)

    loaded = class_get_by_slug("lookup-class", using=using)
    expected = WorkloadClass.objects.using(using).get(slug="lookup-class")
    assert _field_values(loaded) == _field_values(expected)
    # Same types too: converters ran (a dict, not JSON text; Decimals; aware datetimes; bools).
    assert {name: type(value) for name, value in _field_values(loaded).items()} == {
        name: type(value) for name, value in _field_values(expected).items()
    }
    assert loaded.payload_schema["properties"]["n"]["default"] == 3
    assert loaded.backoff_jitter is False and loaded.shed_load_when_paused is True
    assert loaded.created_at.tzinfo is not None
    assert loaded._state.db == using and not loaded._state.adding
    assert loaded.cost_rates.name == "lookup-rates"


@pytest.mark.parametrize("using", DATABASES)
def test_an_unknown_slug_is_none(using):
    assert class_get_by_slug("no-such-class", using=using) is None
