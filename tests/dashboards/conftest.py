import pytest
from django.test import Client

from tests.dashboards.helpers import feed_demo_telemetry, registered_steps_handler

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
    from workloads.services.demo import seed_demo_fleet

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
