"""A TCP proxy in front of a real redis-server that lets a given number of LPUSH commands through
(over Redis a Celery task message is one LPUSH; so is its task-sent event, but only while an event
receiver is bound), then drops every connection at the next one, before it reaches Redis, and
drops each new connection at once: a broker that goes away in the middle of a batch, with exactly
that many messages in it. `hang_after` goes silent instead: the connections stay open, the proxy
reads what the client sends and never forwards or answers it, and each new connection is accepted
and never answered (no reply to its first command): a broker that hangs. `heal()` closes the
silent connections and forwards everything again. `slow_down` forwards each LPUSH only after a
while: a broker that answers, slowly.

Commands are read whole (RESP arrays, what redis-py sends), so the cut falls between two commands
and never leaves half a message in Redis."""

from __future__ import annotations

import socket
import threading
import time

from tests.hardening.test_fault_broker import _free_port


class RedisCutProxy:
    def __init__(self, redis_port: int):
        self.port = _free_port()
        self.pushes = 0  # LPUSH commands forwarded to Redis
        self._redis_port = redis_port
        self._pushes_allowed: int | None = None  # None: no limit
        self._hang_at_limit = False  # at the limit: go silent instead of cutting
        self._cut = False
        self._hanging = False
        self._push_delay = 0.0  # seconds each LPUSH waits before it is forwarded
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cut_after(self, pushes: int) -> None:
        """Let `pushes` more LPUSH commands through, then cut at the next one."""
        with self._lock:
            self._pushes_allowed, self._hang_at_limit = pushes, False

    def hang_after(self, pushes: int) -> None:
        """Let `pushes` more LPUSH commands through, then go silent at the next one (0 before the
        first: new connections are never answered)."""
        with self._lock:
            self._pushes_allowed, self._hang_at_limit = pushes, True

    def hang(self) -> None:
        """Go silent now: what is sent from here on is read and never answered, on the open
        connections and on every new one."""
        with self._lock:
            self._hanging = True

    def slow_down(self, seconds: float) -> None:
        """Forward each LPUSH only `seconds` after it arrived."""
        with self._lock:
            self._push_delay = seconds

    def heal(self) -> None:
        with self._lock:
            if self._hanging:
                self._close_all()  # what it left unanswered is lost, as in a restart
            self._cut, self._hanging, self._pushes_allowed, self._push_delay = False, False, None, 0.0

    def stop(self) -> None:
        self._listener.close()
        with self._lock:
            self._close_all()

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return  # stopped
            with self._lock:
                if self._hanging:
                    self._sockets.add(client)
                    threading.Thread(target=_swallow, args=(client,), daemon=True).start()
                    continue
                upstream = None if self._cut else _connect(self._redis_port)
                if upstream is None:  # cut, or Redis itself is down: the client's connection closes
                    client.close()
                    continue
                self._sockets.update((client, upstream))
            threading.Thread(target=self._commands, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client), daemon=True).start()

    def _commands(self, client: socket.socket, upstream: socket.socket) -> None:
        buffer = b""
        while chunk := _recv(client):
            buffer += chunk
            while (command := _next_command(buffer)) is not None:
                name, end = command
                verdict = self._admit(name)
                if verdict == "cut":
                    return
                if verdict == "hang":
                    _swallow(client)  # this command and everything after it is read and dropped
                    return
                if name == b"LPUSH" and self._push_delay:
                    time.sleep(self._push_delay)
                try:
                    upstream.sendall(buffer[:end])
                except OSError:
                    return
                buffer = buffer[end:]
        _shut(upstream)

    def _admit(self, name: bytes) -> str:
        """What becomes of the next command: "forward", "cut" (every connection was closed) or "hang"."""
        with self._lock:
            if name == b"LPUSH" and self._pushes_allowed == 0 and not self._hanging:
                if not self._hang_at_limit:
                    self._cut = True
                    self._close_all()
                    return "cut"
                self._hanging = True
            if self._hanging:
                return "hang"
            if name == b"LPUSH":
                if self._pushes_allowed is not None:
                    self._pushes_allowed -= 1
                self.pushes += 1
            return "forward"

    def _replies(self, upstream: socket.socket, client: socket.socket) -> None:
        while chunk := _recv(upstream):
            try:
                client.sendall(chunk)
            except OSError:
                return
        _shut(client)

    def _close_all(self) -> None:
        for sock in self._sockets:
            _shut(sock)
            sock.close()
        self._sockets.clear()


def _next_command(buffer: bytes) -> tuple[bytes, int] | None:
    """(upper-case name, end offset) of the RESP array at the start of `buffer`; None while the
    command is not complete."""
    line_end = buffer.find(b"\r\n")
    if line_end < 0:
        return None
    if not buffer.startswith(b"*"):
        raise ValueError(f"not a RESP array: {buffer[:40]!r}")
    position, name = line_end + 2, b""
    for argument in range(int(buffer[1:line_end])):
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        length = int(buffer[position + 1 : line_end])
        start, position = line_end + 2, line_end + 2 + length + 2
        if len(buffer) < position:
            return None
        if argument == 0:
            name = buffer[start : start + length].upper()
    return name, position


def _connect(port: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port))
    except OSError:
        return None


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _swallow(client: socket.socket) -> None:
    """Read what the client sends and drop it, never answering, until the connection closes."""
    while _recv(client):
        pass


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
