import uuid
from datetime import UTC, datetime, timedelta

import pytest

from workloads.providers.base import QueueSpec

PROJECT = "local-proj"

# Tests with threads or processes need committed rows: they run as transactional tests, on
# PostgreSQL and on the SQLite alias the contract suite also uses. Their flush is limited to the
# workloads and localcloud apps' tables, so the role groups (a data migration) survive for later tests.
LOCAL_APPS = ["workloads", "workloads.providers.local"]
ALIASES = [
    pytest.param(
        "default",
        id="postgres",
        marks=pytest.mark.django_db(transaction=True, databases=["default"], available_apps=LOCAL_APPS),
    ),
    pytest.param(
        "contract_sqlite",
        id="sqlite",
        marks=pytest.mark.django_db(transaction=True, databases=["contract_sqlite"], available_apps=LOCAL_APPS),
    ),
]


class Clock:
    """A hand-driven clock for the provider's `now` seam."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock():
    # A minute boundary in the past, so step arithmetic in the tests is plain.
    return Clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


def queue_spec(slug: str | None = None, **overrides) -> QueueSpec:
    slug = slug or f"q{uuid.uuid4().hex[:10]}"
    values = dict(
        slug=slug,
        topic=f"projects/{PROJECT}/topics/{slug}",
        subscription=f"projects/{PROJECT}/subscriptions/{slug}-worker",
        dead_letter_topic=f"projects/{PROJECT}/topics/{slug}-dead-letter",
        dead_letter_subscription=f"projects/{PROJECT}/subscriptions/{slug}-dead-letter",
        ack_deadline_seconds=60,
        max_delivery_attempts=5,
        min_backoff_seconds=0,
        max_backoff_seconds=0,
    )
    values.update(overrides)
    return QueueSpec(**values)
