"""The embedded `local` provider: Queue, WorkerPools and Metrics on the control plane's own
database, so the product runs on one machine with no cloud account (see docs/architecture.md, "The embedded default").

`using` is the database alias every ORM call goes through (the contract suite runs the same
provider on PostgreSQL and on SQLite in one session).

This package is also a Django app (label `localcloud`, apps.py) holding the provider's tables
(models.py). Django imports an app's package before any model may be defined, so the adapters,
which import the models, are loaded on first use (PEP 562 `__getattr__`), not here.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workloads.providers.base import Providers
    from workloads.providers.local.metrics import LocalMetrics
    from workloads.providers.local.pools import LocalWorkerPools
    from workloads.providers.local.queue import LocalQueue, local_queue_prune

__all__ = ["LocalMetrics", "LocalQueue", "LocalWorkerPools", "build_local_providers", "local_queue_prune"]

_LAZY = {
    "LocalMetrics": "workloads.providers.local.metrics",
    "LocalWorkerPools": "workloads.providers.local.pools",
    "LocalQueue": "workloads.providers.local.queue",
    "local_queue_prune": "workloads.providers.local.queue",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_local_providers(using: str = "default") -> Providers:
    from workloads.providers.base import Providers
    from workloads.providers.local.metrics import LocalMetrics
    from workloads.providers.local.pools import LocalWorkerPools
    from workloads.providers.local.queue import LocalQueue

    return Providers(
        queue=LocalQueue(using=using),
        pools=LocalWorkerPools(using=using),
        metrics=LocalMetrics(using=using),
        name="local",
    )
