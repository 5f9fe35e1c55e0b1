"""The embedded `local` provider: Queue, WorkerPools and Metrics on the control plane's own
database, so the product runs on one machine with no cloud account (see docs/architecture.md, "The embedded default").

`using` is the database alias every ORM call goes through (the contract suite runs the same
provider on PostgreSQL and on SQLite in one session).
"""

from workloads.providers.base import Providers
from workloads.providers.local.metrics import LocalMetrics
from workloads.providers.local.pools import LocalWorkerPools
from workloads.providers.local.queue import LocalQueue, local_queue_prune

__all__ = ["LocalMetrics", "LocalQueue", "LocalWorkerPools", "build_local_providers", "local_queue_prune"]


def build_local_providers(using: str = "default") -> Providers:
    return Providers(
        queue=LocalQueue(using=using),
        pools=LocalWorkerPools(using=using),
        metrics=LocalMetrics(using=using),
        name="local",
    )
