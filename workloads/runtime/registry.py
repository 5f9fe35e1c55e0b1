"""Handlers are plain functions registered per workload class:

    @handler("document-processing")
    def process(payload: dict, context: WorkContext) -> dict | None: ...

The return value (a JSON-able dict, or None) is the unit's result summary: it goes into the
completion event. `runworker` imports the modules listed in settings.WORKER_HANDLER_MODULES, which
registers their handlers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from django.conf import settings

Handler = Callable[[dict, Any], dict | None]

_handlers: dict[str, Handler] = {}


class HandlerNotFound(LookupError):
    pass


def handler(slug: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of class `slug`."""

    def register(function: Handler) -> Handler:
        existing = _handlers.get(slug)
        if existing is not None and _qualified(existing) != _qualified(function):
            raise ValueError(f"Class {slug!r} already has the handler {_qualified(existing)}; one handler per class.")
        _handlers[slug] = function
        return function

    return register


def get_handler(slug: str) -> Handler:
    try:
        return _handlers[slug]
    except KeyError:
        modules = ", ".join(settings.WORKER_HANDLER_MODULES) or "none"
        raise HandlerNotFound(
            f"No handler is registered for class {slug!r} (handler modules: {modules}). Register one with "
            f'@handler("{slug}") in a module listed in WORKER_HANDLER_MODULES.'
        ) from None


def load_handler_modules(modules: list[str] | None = None) -> None:
    for module in settings.WORKER_HANDLER_MODULES if modules is None else modules:
        importlib.import_module(module)


def registered() -> dict[str, Handler]:
    return dict(_handlers)


def unregister(slug: str) -> None:
    """Tests register throwaway handlers; this takes one away again."""
    _handlers.pop(slug, None)


def _qualified(function: Handler) -> str:
    return f"{function.__module__}.{function.__qualname__}"
