"""The tests' own HTTP servers (notification receivers, identity providers, schema hosts) served from
a daemon thread.

`serve_forever` looks for a shutdown request only between polls of its socket, every 0.5 s by
default, so each `shutdown()` at a test's end waited up to half a second, and some 80 tests stop
such a server. Polled every 20 ms instead, a stop takes at most that; the extra wake-ups of an idle
server cost nothing measurable.
"""

from __future__ import annotations

import threading
from socketserver import BaseServer

POLL_SECONDS = 0.02


def serve_in_background(server: BaseServer) -> threading.Thread:
    """Start `server.serve_forever` on a daemon thread; `server.shutdown()` then returns within a poll."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True)
    thread.start()
    return thread
