"""Who is acting, from where, in which request: read by the audit log without threading a
request object through services (services stay free of HTTP)."""

import contextvars
from dataclasses import dataclass


@dataclass
class RequestContext:
    request_id: str = ""
    source_ip: str | None = None
    token_id: int | None = None
    via: str = "system"  # api | admin | ui | cli | system


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "controlplane_request_context", default=None
)


def current() -> RequestContext:
    return _current.get() or RequestContext()


def activate(context: RequestContext) -> contextvars.Token:
    return _current.set(context)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)


class using:
    """`with request_context.using(via="cli"):` for code that runs outside a request."""

    def __init__(self, **fields):
        self.context = RequestContext(**fields)
        self._token = None

    def __enter__(self) -> RequestContext:
        self._token = activate(self.context)
        return self.context

    def __exit__(self, *exc_info) -> None:
        deactivate(self._token)
