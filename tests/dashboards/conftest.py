import pytest
from django.test import Client

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
