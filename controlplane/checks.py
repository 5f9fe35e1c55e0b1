"""System checks for production settings (run by `manage.py check --deploy`)."""

from django.conf import settings
from django.core import checks

# Backends whose counters live in one process: each web worker, instance and revision counts
# alone, so N processes allow N times every rate limit (3 workers: 12 login guesses against 5).
_PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@checks.register(checks.Tags.security, deploy=True)
def shared_cache_for_rate_limits(app_configs, **kwargs):
    if settings.DEBUG:
        return []
    backend = settings.CACHES["default"]["BACKEND"]
    if backend not in _PER_PROCESS_CACHES:
        return []
    return [
        checks.Warning(
            f"The cache ({backend}) is per process: the login limits and ingestion rate limits count "
            "in each process on its own, so every worker and instance multiplies them.",
            hint="Set CACHE_URL to a cache shared by all processes, e.g. redis://MEMORYSTORE_HOST:6379/1 "
            "(see docs/operations.md, Hardening).",
            id="controlplane.W001",
        )
    ]
