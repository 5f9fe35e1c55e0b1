"""The poll's folds done in SQL on PostgreSQL (workloads/services/rollups.py): the hourly rows of
the hours touched (`hourly_rollups_refold`) and each class's live values (`live_values`) must be
what the Python fold of the same minutes gives (`fold_minutes` through `hourly_rollups_upsert`,
`live_values_of`), stored byte for byte the same. On SQLite (`make run`) both names run the
Python fold; the tests run there too, so the fallback is exercised."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections

from tests.factories import WorkloadClassFactory
from workloads.domain import histogram
from workloads.models import MetricRollup, Resolution
from workloads.services.rollups import (
    hourly_rollups_refold,
    hourly_rollups_upsert,
    live_values,
    live_values_of,
    minute_rows,
)

DATABASES = ["default", "contract_sqlite"]
pytestmark = pytest.mark.django_db(databases=DATABASES)

HOUR = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SPAN = (HOUR, HOUR + timedelta(hours=3))


def _classes(using: str) -> list[int]:
    made = []
    for n in range(3):
        workload_class = WorkloadClassFactory.build(slug=f"fold-{n}", cost_rates=None)
        workload_class.save(using=using)
        made.append(workload_class.pk)
    return made


def _minute(class_id: int, bucket: datetime, rng: random.Random, *, sparse: bool) -> MetricRollup:
    """A minute with the kinds of values polls write: gaps (NULL gauges, [] histograms), whole and
    fractional floats, histograms that add up to nothing, runtime figures on some minutes."""
    gap = sparse and rng.random() < 0.4
    latencies = [rng.lognormvariate(0, 0.8) * 0.3 for _ in range(rng.randint(0, 30))]
    latency = histogram.from_values(latencies) if latencies else rng.choice([[], histogram.empty()])
    runtime = histogram.from_values([rng.random() for _ in range(5)]) if rng.random() < 0.3 else []
    return MetricRollup(
        workload_class_id=class_id,
        resolution=Resolution.MINUTE,
        bucket_start=bucket,
        oldest_unacked_age_seconds=None if gap else rng.choice([30.0, 0.0, 7.25, rng.random() * 900, 1e-7]),
        backlog=None if gap else float(rng.randint(0, 500)),
        dead_letter_backlog=None if gap else rng.choice([0.0, 3.0]),
        dead_letter_oldest_age_seconds=None if gap else rng.random() * 60,
        instances=None if gap else rng.choice([1.0, 2 / 3, 3.0]),
        instance_seconds=rng.choice([0.0, 40.1, 60.0, 1 / 3]),
        completed=rng.randint(0, 60),
        failed=rng.randint(0, 3),
        records=rng.randint(0, 600),
        tokens=rng.randint(0, 6000),
        latency_buckets=latency,
        latency_count=len(latencies),
        latency_sum=sum(latencies),
        latency_good=rng.random() * len(latencies),
        executions=rng.randint(0, 9) if runtime else 0,
        execution_errors=rng.randint(0, 2) if runtime else 0,
        runtime_latency_buckets=runtime,
        runtime_latency_count=sum(runtime),
        runtime_latency_sum=rng.random() * 5 if runtime else 0.0,
        queue_age_minutes=0 if gap else 1,
        queue_age_good=0 if gap else rng.randint(0, 1),
        fetched_at=bucket + timedelta(seconds=rng.randint(60, 600), microseconds=rng.randint(0, 999999)),
        newest_sample_age_seconds=None if rng.random() < 0.2 else rng.random() * 90,
    )


def _write_minutes(using: str, class_ids: list[int], *, seed: int) -> None:
    rng = random.Random(seed)
    rows = []
    for index, class_id in enumerate(class_ids):
        for minute in range(0, 170):
            if rng.random() < 0.1:
                continue  # a minute without data
            rows.append(_minute(class_id, HOUR + timedelta(minutes=minute), rng, sparse=index != 0))
    MetricRollup.objects.using(using).bulk_create(rows)


def _stored(using: str, resolution: str) -> list[tuple]:
    """The rows as the database holds them (JSON as its text), read with plain SQL."""
    connection = connections[using]
    columns = [f.column for f in MetricRollup._meta.concrete_fields if not f.primary_key]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM workloads_metricrollup WHERE resolution = %s "
            "ORDER BY workload_class_id, bucket_start",
            [resolution],
        )
        return cursor.fetchall()


@pytest.mark.parametrize("using", DATABASES)
def test_the_hourly_fold_writes_the_rows_the_python_fold_writes(using):
    class_ids = _classes(using)
    _write_minutes(using, class_ids, seed=1)
    hours = MetricRollup.objects.using(using).filter(resolution=Resolution.HOUR)

    by_python = hourly_rollups_upsert(
        minute_rows(start=SPAN[0], end=SPAN[1], using=using), start=SPAN[0], end=SPAN[1], using=using
    )
    expected = _stored(using, Resolution.HOUR)
    hours.delete()
    assert hourly_rollups_refold(start=SPAN[0], end=SPAN[1], class_ids=class_ids, using=using) == by_python == 9
    assert _stored(using, Resolution.HOUR) == expected

    # Over existing hourly rows (the upsert's update), after the minutes changed: the same rows
    # as the Python fold of the new minutes; classes left out keep their hours.
    MetricRollup.objects.using(using).filter(resolution=Resolution.MINUTE).delete()
    _write_minutes(using, class_ids, seed=2)
    before = _stored(using, Resolution.HOUR)
    assert hourly_rollups_refold(start=SPAN[0], end=SPAN[1], class_ids=class_ids[:2], using=using) == 6
    refolded = _stored(using, Resolution.HOUR)
    assert [row for row in refolded if row[0] == class_ids[2]] == [row for row in before if row[0] == class_ids[2]]
    hours.delete()
    rows = minute_rows(start=SPAN[0], end=SPAN[1], class_ids=class_ids[:2], using=using)
    hourly_rollups_upsert(rows, start=SPAN[0], end=SPAN[1], using=using)
    assert [row for row in refolded if row[0] != class_ids[2]] == _stored(using, Resolution.HOUR)


@pytest.mark.parametrize("using", DATABASES)
def test_live_values_are_the_python_fold_of_the_same_minutes(using):
    class_ids = _classes(using)
    _write_minutes(using, class_ids, seed=3)
    start, end = HOUR + timedelta(minutes=70), HOUR + timedelta(minutes=130)
    # One class has only histograms that add up to nothing in the span, one no gauge at all.
    MetricRollup.objects.using(using).filter(workload_class_id=class_ids[1]).update(latency_buckets=histogram.empty())
    MetricRollup.objects.using(using).filter(workload_class_id=class_ids[2]).update(
        backlog=None, instances=None, oldest_unacked_age_seconds=None
    )

    live = live_values(start=start, end=end, class_ids=class_ids, using=using)
    expected = live_values_of(minute_rows(start=start, end=end, class_ids=class_ids, using=using))
    assert live == expected
    assert set(live) == set(class_ids) and live[class_ids[0]].gauges and not any(live[class_ids[1]].latency)
    assert "backlog" not in live[class_ids[2]].gauges
    assert live_values(start=start, end=end, class_ids=class_ids[:1], using=using) == {
        class_ids[0]: expected[class_ids[0]]
    }
    assert live_values(start=SPAN[1], end=SPAN[1] + timedelta(hours=1), class_ids=class_ids, using=using) == {}
