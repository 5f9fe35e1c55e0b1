"""Provider selection: `get_providers()` returns the adapters chosen by CONTROLPLANE_PROVIDER,
created once per process (Google clients hold channels and threads; they are meant to be reused)."""

import threading

from django.conf import settings

from workloads.providers.base import Providers

_lock = threading.Lock()
_cached: Providers | None = None


def get_providers() -> Providers:
    global _cached
    if _cached is None:
        with _lock:
            if _cached is None:
                _cached = _build(settings.CONTROLPLANE_PROVIDER)
    return _cached


def set_providers(providers: Providers | None) -> None:
    """Install specific adapters (tests: the gRPC fakes or the emulator); None resets."""
    global _cached
    with _lock:
        _cached = providers


def _build(name: str) -> Providers:
    if name == "gcp":
        from workloads.providers.gcp import build_gcp_providers

        return build_gcp_providers()
    from workloads.providers.local import build_local_providers

    return build_local_providers()
