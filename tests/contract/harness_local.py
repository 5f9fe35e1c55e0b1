"""The contract harness for the embedded local provider, on PostgreSQL (`default`) or SQLite
(`contract_sqlite`).

Consumers run handler threads, which see only committed rows: the local params carry
`django_db(transaction=True, databases=[alias])` marks (tests/contract/conftest.py), so the test
databases are set up for both aliases at session start and flushed after each test. Restricting
the test to its own alias also proves the provider never strays onto another database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.contract.harness import Harness
from workloads.providers.base import OutboundMessage, PoolSpec, Providers
from workloads.providers.local import build_local_providers
from workloads.providers.local.pools import local_pools_new_revision


@dataclass
class LocalHarness(Harness):
    name: str
    providers: Providers = field(repr=False)
    # Queue gauges and counters take one statement, the latency distribution two (counts + buckets).
    max_calls_per_series: int = 2

    def create_pool(self, spec: PoolSpec, *, instance_count: int) -> None:
        pools = self.providers.pools
        pools.ensure(spec, initial_instances=instance_count)
        pools.set_instances(spec, instance_count, reason="contract test set-up")

    def deploy_revision(self, spec: PoolSpec) -> None:
        local_pools_new_revision(using=self.providers.pools.using)

    def make_backlog(self, target, count: int) -> None:
        spec = self.ready_queue(slug=target.slug)
        assert spec.subscription == target.subscription
        self.providers.queue.publish(spec, [OutboundMessage(f"backlog-{i}".encode()) for i in range(count)])

    def count_metric_calls(self) -> int:
        return self.providers.metrics.statements

    def fail_next_pool_calls(self, code: str, times: int) -> bool:
        return False  # no network between the port and its table: nothing transient to inject


def make_local_harness(request: pytest.FixtureRequest, *, database: str) -> LocalHarness:
    marker = request.node.get_closest_marker("django_db")
    assert marker is not None and marker.kwargs.get("transaction") and database in marker.kwargs.get("databases", ()), (
        f"the local contract params need django_db(transaction=True, databases=[{database!r}]) marks"
    )
    request.getfixturevalue("transactional_db")
    return LocalHarness(
        name=getattr(request, "param", f"local-{database}"), providers=build_local_providers(using=database)
    )
