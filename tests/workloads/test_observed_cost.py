"""Cost of observed runtimes: instance time from the runtime's own metrics x the class's rates,
labelled with its source; without instance time the compute cost is unknown, never $0 (issue 20,
item 2)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from tests.factories import CostRatesFactory, WorkloadClassFactory
from workloads.models import MetricRollup
from workloads.selectors.comparison import Period, comparison
from workloads.selectors.cost import cost_report
from workloads.selectors.migration import side_evidence

# Recent (the API reads with the real clock, and minute rows are kept for days only).
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
END = START + timedelta(minutes=30)
NOW = END + timedelta(minutes=5)


def rows(wc, *, minutes: int, records: int, instance_seconds: float | None):
    MetricRollup.objects.bulk_create(
        MetricRollup(
            workload_class=wc,
            resolution="minute",
            bucket_start=START + timedelta(minutes=i),
            completed=records,
            records=records,
            executions=records,
            instance_seconds=instance_seconds or 0.0,
            instances=None if instance_seconds is None else instance_seconds / 60,
            fetched_at=START + timedelta(minutes=i + 1),
        )
        for i in range(minutes)
    )


@pytest.fixture
def classes(db):
    rates = CostRatesFactory(
        name="observed", currency="USD", vcpu_second=Decimal("0.00002"), gib_second=Decimal("0.000002"),
        per_record=Decimal("0.001"), per_1k_tokens=Decimal("0"),
    )  # fmt: skip
    service = WorkloadClassFactory(
        slug="push-svc", runtime="cloud_run_service", runtime_resource="push", cost_rates=rates,
        vcpu_per_instance=Decimal("1"), memory_gib_per_instance=Decimal("2"),
    )  # fmt: skip
    celery = WorkloadClassFactory(
        slug="legacy-celery", runtime="celery", runtime_resource="legacy.task", cost_rates=rates,
        vcpu_per_instance=Decimal("1"), memory_gib_per_instance=Decimal("2"),
    )  # fmt: skip
    # 30 minutes, 10 records a minute; the service billed 45 instance-seconds a minute.
    rows(service, minutes=30, records=10, instance_seconds=45.0)
    rows(celery, minutes=30, records=10, instance_seconds=None)
    return service, celery


def test_observed_instance_time_is_priced_at_the_class_rates_and_labelled(classes):
    lines = {line.key: line for line in cost_report(start=START, end=END, now=NOW).lines}
    service = lines["push-svc"]
    # 1350 instance-s x (1 vCPU x 0.00002 + 2 GiB x 0.000002) = 0.0324; 300 records x 0.001 = 0.3
    assert service.instance_time_known
    assert service.compute_cost == Decimal("0.032400")
    assert service.cost_per_1k_records == Decimal("1.108000")  # 0.3324 / 300 x 1000
    assert "run.googleapis.com/container/billable_instance_time" in service.instance_time_source


def test_without_instance_time_the_compute_cost_is_unknown_not_zero(classes):
    celery = {line.key: line for line in cost_report(start=START, end=END, now=NOW).lines}["legacy-celery"]
    assert not celery.instance_time_known
    assert celery.known_compute_cost is None and celery.cost_per_1k_records is None
    assert celery.cost_per_completed_job is None
    assert celery.instance_time_source.startswith("unknown")
    team = cost_report(start=START, end=END, now=NOW, group_by="team").lines
    assert all(not line.instance_time_known for line in team if line.key == celery.owner_team)


def test_the_cost_api_and_screen_say_unknown(classes, client_as, viewer):
    client = client_as(viewer)
    body = client.get(reverse("api:cost"), {"start": START.isoformat(), "end": END.isoformat()}).json()
    lines = {line["key"]: line for line in body["lines"]}
    assert lines["legacy-celery"]["compute_cost"] is None
    assert lines["legacy-celery"]["instance_time_known"] is False
    assert lines["legacy-celery"]["cost_per_1k_records"] is None
    assert lines["push-svc"]["compute_cost"] == "0.032400"
    assert "billable_instance_time" in lines["push-svc"]["instance_time_source"]

    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("dashboards:cost"), {"period": "today"}).content.decode()
    row = page[page.index("legacy-celery") :]
    row = row[: row.index("</tr>")]
    assert "compute-unknown" in row and "$0.00" not in row
    assert "Celery" in row  # why: the runtime reports no instance time


def test_comparison_and_evidence_carry_the_source_and_refuse_a_zero_cost(classes):
    service, celery = classes
    result = comparison(a=Period(celery, START, END), b=Period(service, START, END), now=NOW)
    assert result.a.cost_per_1k_records is None and result.b.cost_per_1k_records == Decimal("1.108000")
    assert result.cost_per_1k_ratio is None
    assert any("legacy-celery" in note and "unknown" in note for note in result.notes)

    old = side_evidence(celery, start=START, end=END, now=NOW)
    assert old.cost_per_1k_records.estimate is None and old.cost_source.startswith("unknown")
    new = side_evidence(service, start=START, end=END, now=NOW)
    assert new.cost_per_1k_records.estimate == pytest.approx(1.108, rel=1e-6)
    assert "billable_instance_time" in new.cost_source
