"""A TCP proxy in front of an AMQP 0-9-1 broker (RabbitMQ) that lets a given number of
Basic.Publish frames through, then goes silent at the next one: every connection stays open, what
the client sends is read and dropped, nothing more reaches it. `hang()` goes silent at once: each
new connection's handshake is never answered. A broker that hangs, for py-amqp (whose publishes
only wait for the broker with publisher confirms on).

Frames are read whole (type, channel, size, payload, frame end), so the silence falls between
two frames and the broker never sees half a message."""

from __future__ import annotations

import socket
import struct
import threading

from tests.hardening.test_fault_broker import _free_port

PROTOCOL_HEADER_SIZE = 8  # b"AMQP\x00\x00\x09\x01"
FRAME_HEADER = struct.Struct(">BHI")  # type, channel, payload size
METHOD_FRAME = 1
BASIC_PUBLISH = (60, 40)  # class id, method id


class AmqpHangProxy:
    def __init__(self, broker_port: int):
        self.port = _free_port()
        self.publishes = 0  # Basic.Publish frames forwarded to the broker
        self._broker_port = broker_port
        self._publishes_allowed: int | None = None  # None: no limit
        self._hanging = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def hang_after(self, publishes: int) -> None:
        """Let `publishes` more Basic.Publish frames through, then go silent at the next one."""
        with self._lock:
            self._publishes_allowed = publishes

    def hang(self) -> None:
        with self._lock:
            self._hanging = True

    def stop(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)
                sock.close()
            self._sockets.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return  # stopped
            with self._lock:
                self._sockets.add(client)
                if self._hanging:
                    threading.Thread(target=_swallow, args=(client,), daemon=True).start()
                    continue
                upstream = socket.create_connection(("127.0.0.1", self._broker_port))
                self._sockets.add(upstream)
            threading.Thread(target=self._frames, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client), daemon=True).start()

    def _frames(self, client: socket.socket, upstream: socket.socket) -> None:
        buffer, header_sent = b"", False
        while chunk := _recv(client):
            buffer += chunk
            if not header_sent:
                if len(buffer) < PROTOCOL_HEADER_SIZE:
                    continue
                upstream.sendall(buffer[:PROTOCOL_HEADER_SIZE])
                buffer, header_sent = buffer[PROTOCOL_HEADER_SIZE:], True
            while (end := _frame_end(buffer)) is not None:
                if not self._admit(buffer[:end]):
                    _swallow(client)  # this frame and everything after it is read and dropped
                    return
                try:
                    upstream.sendall(buffer[:end])
                except OSError:
                    return
                buffer = buffer[end:]
        _shut(upstream)

    def _admit(self, frame: bytes) -> bool:
        """Forward this frame? False once silent."""
        kind, _channel, size = FRAME_HEADER.unpack_from(frame)
        is_publish = kind == METHOD_FRAME and size >= 4 and struct.unpack_from(">HH", frame, 7) == BASIC_PUBLISH
        with self._lock:
            if is_publish and self._publishes_allowed == 0:
                self._hanging = True
            if self._hanging:
                return False
            if is_publish:
                if self._publishes_allowed is not None:
                    self._publishes_allowed -= 1
                self.publishes += 1
            return True

    def _replies(self, upstream: socket.socket, client: socket.socket) -> None:
        while chunk := _recv(upstream):
            with self._lock:
                if self._hanging:
                    continue  # silent: the broker's answers are not passed on either
            try:
                client.sendall(chunk)
            except OSError:
                return
        _shut(client)


def _frame_end(buffer: bytes) -> int | None:
    """The end offset of the whole frame at the start of `buffer`; None while it is incomplete."""
    if len(buffer) < FRAME_HEADER.size:
        return None
    _kind, _channel, size = FRAME_HEADER.unpack_from(buffer)
    end = FRAME_HEADER.size + size + 1  # the payload and the frame-end octet
    return end if len(buffer) >= end else None


def _swallow(client: socket.socket) -> None:
    """Read what the client sends and drop it, never answering, until the connection closes."""
    while _recv(client):
        pass


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
