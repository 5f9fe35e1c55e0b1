"""Session fixtures for the GCP adapters' tests (imported by tests/conftest.py, so every test
package sees them): the Pub/Sub emulator and clients bound to it, and the gRPC fakes of Cloud Run
Admin and Cloud Monitoring with real clients bound to them. Function-scoped wrappers reset the
fakes so each test starts empty."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory):
    """Google's Pub/Sub emulator on a free port, with PUBSUB_EMULATOR_HOST pointing at it for the
    session; every test that uses it skips with one line where it is not installed."""
    from tests.contract.fakes.emulator import MISSING, PubSubEmulator, find_emulator

    binary = find_emulator()
    if binary is None:
        pytest.skip(MISSING)
    emulator = PubSubEmulator(binary, tmp_path_factory.mktemp("pubsub-emulator"))
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    try:
        yield emulator
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous
        emulator.stop()


@pytest.fixture(scope="session")
def pubsub_clients(pubsub_emulator):
    """(publisher, subscriber, ordered_publisher) built the way production builds them, which honours
    PUBSUB_EMULATOR_HOST."""
    from workloads.providers.gcp import pubsub_clients as build

    publisher, ordered_publisher, subscriber = build()
    yield publisher, subscriber, ordered_publisher
    publisher.stop()
    ordered_publisher.stop()
    subscriber.close()


@dataclass
class GcpFakes:
    run: object  # FakeCloudRun
    monitoring: object  # FakeMonitoring
    address: str
    run_client: object
    monitoring_client: object

    def reset(self) -> None:
        self.run.reset()
        self.monitoring.reset()


@pytest.fixture(scope="session")
def gcp_fakes():
    """One in-process gRPC server hosting both fakes, and clients built through the adapters'
    endpoint override (an insecure channel to that address)."""
    from tests.contract.fakes.cloudrun import FakeCloudRun
    from tests.contract.fakes.monitoring import FakeMonitoring
    from tests.contract.fakes.server import GrpcServer
    from workloads.providers.gcp import monitoring_client, run_client

    run, monitoring = FakeCloudRun(), FakeMonitoring()
    server = GrpcServer(*run.handlers(), *monitoring.handlers())
    fakes = GcpFakes(
        run=run,
        monitoring=monitoring,
        address=server.address,
        run_client=run_client(server.address),
        monitoring_client=monitoring_client(server.address),
    )
    yield fakes
    fakes.run_client.transport.close()
    fakes.monitoring_client.transport.close()
    server.stop()


@pytest.fixture
def fake_cloud_run(gcp_fakes):
    gcp_fakes.run.reset()
    yield gcp_fakes.run
    gcp_fakes.run.reset()


@pytest.fixture
def fake_monitoring(gcp_fakes):
    gcp_fakes.monitoring.reset()
    yield gcp_fakes.monitoring
    gcp_fakes.monitoring.reset()
