import pytest
from django.test import Client

from tests.dashboards.helpers import feed_demo_telemetry, registered_steps_handler
from tests.dashboards.oncall_fixtures import DEFERRABLE_SLUG, DL_SLUG

HX = {"HX-Request": "true"}


@pytest.fixture
def ui_client():
    """ui_client(user) -> a django test Client with a browser session as that user (None: anonymous)."""

    def make(user=None):
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def demo_fleet(db):
    from demo.fleet import seed_demo_fleet

    seed_demo_fleet()


@pytest.fixture
def polled_fleet(demo_fleet):
    """The demo fleet with three hours of telemetry: one healthy class, one breaching its queue-age
    SLO (with a paging alert), one whose metrics stopped (stale) and one never polled."""
    from django.utils import timezone

    now = timezone.now()
    feed_demo_telemetry(now)
    return now


@pytest.fixture
def steps_handler():
    """Registers the test action kind (tests.dashboards.helpers.StepsHandler) for the test."""
    with registered_steps_handler():
        yield


# The on-call screens' data: see tests/dashboards/oncall_fixtures.py for the slugs.
def _oncall_rows() -> dict:
    from tests.workloads.deadletter_helpers import dead_letter_row
    from workloads.models import TriageRule, WorkloadClass
    from workloads.providers import get_providers
    from workloads.providers.specs import pool_spec

    wc = WorkloadClass.objects.get(slug=DL_SLUG)
    rows = [dead_letter_row(wc, error_signature="sig-timeout", error_type="Timeout") for _ in range(4)]
    rows.append(dead_letter_row(wc, error_signature="sig-schema", error_type="SchemaError"))
    rows.append(
        dead_letter_row(wc, error_signature="sig-schema", error_type="SchemaError", replay_count=wc.replay_limit)
    )
    rule = TriageRule.objects.create(name="hold timeouts", error_signature="sig-timeout", action="hold")
    for workload_class in WorkloadClass.objects.all():
        get_providers().pools.ensure(
            pool_spec(workload_class), initial_instances=3 if workload_class.slug == DEFERRABLE_SLUG else 2
        )
    return {"class": wc, "rows": rows, "rule": rule, "deferrable": WorkloadClass.objects.get(slug=DEFERRABLE_SLUG)}


@pytest.fixture
def oncall(demo_fleet):
    """Four timeouts and two schema errors of the document class (one past the replay limit), a
    hold rule, and every demo pool at 2 instances (the deferrable one at 3)."""
    return _oncall_rows()


# The same worlds built once for a module (tests/shared_rows.py), for the modules whose every test
# uses them: such a module overrides `demo_fleet` (and `oncall`) with the fixtures below. What a test
# changes is rolled back with its own savepoint; a test that does not ask for them would still see
# the module's rows, hence "every test".
@pytest.fixture(scope="module")
def shared_demo_fleet(django_db_setup, django_db_blocker):
    from demo.fleet import seed_demo_fleet
    from tests.shared_rows import shared_rows

    with shared_rows(django_db_blocker):
        seed_demo_fleet()
        yield


@pytest.fixture(scope="module")
def shared_oncall(shared_demo_fleet, django_db_blocker):
    """`oncall`'s rows, by primary key: each test reads them into objects of its own (a test may
    change one in memory)."""
    from tests.shared_rows import shared_rows

    with shared_rows(django_db_blocker):
        rows = _oncall_rows()
        yield {"class": rows["class"].pk, "rows": [row.pk for row in rows["rows"]], "rule": rows["rule"].pk}


@pytest.fixture
def demo_fleet_of_the_module(shared_demo_fleet, db):
    from django.core.cache import cache

    from workloads.models.environments import ENVIRONMENT_LIST_CACHE_KEY

    # Seeding the fleet for each test dropped the environment switcher's cached list; a test may
    # have cached one with an environment its savepoint has since rolled back.
    cache.delete(ENVIRONMENT_LIST_CACHE_KEY)


@pytest.fixture
def oncall_of_the_module(shared_oncall, demo_fleet_of_the_module):
    from workloads.models import DeadLetter, TriageRule, WorkloadClass

    letters = DeadLetter.objects.in_bulk(shared_oncall["rows"])
    return {
        "class": WorkloadClass.objects.get(pk=shared_oncall["class"]),
        "rows": [letters[pk] for pk in shared_oncall["rows"]],
        "rule": TriageRule.objects.get(pk=shared_oncall["rule"]),
        "deferrable": WorkloadClass.objects.get(slug=DEFERRABLE_SLUG),
    }
