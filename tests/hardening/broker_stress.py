"""One producer or consumer process of the embedded-broker stress test (test_embedded_broker.py).

    python -m tests.hardening.broker_stress produce TRANSPORT FOLDER NAME COUNT
    python -m tests.hardening.broker_stress consume TRANSPORT FOLDER NAME

TRANSPORT is a kombu transport class path. A producer is a slow writer: every file write lands in
two halves with a pause between them (as on a busy disk), which opens the window a consumer of an
unsafe transport falls into. A consumer takes messages until FOLDER/done exists and the queue has
been empty for a moment; it writes what it received and every error it met to FOLDER/NAME.json.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import sys
import time
from queue import Empty

from kombu import Connection

QUEUE = "stress"
WRITE_PAUSE_SECONDS = 0.003


class _SlowFile:
    def __init__(self, file):
        self._file = file

    def write(self, data):
        half = len(data) // 2
        self._file.write(data[:half])
        self._file.flush()
        time.sleep(WRITE_PAUSE_SECONDS)
        self._file.write(data[half:])
        return len(data)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


def _slow_open(*args, **kwargs):
    file = builtins.open(*args, **kwargs)
    return _SlowFile(file) if "w" in (args[1] if len(args) > 1 else kwargs.get("mode", "r")) else file


def _connection(transport: str, folder: str) -> Connection:
    queue_folder = os.path.join(folder, "queue")
    options = {
        "data_folder_in": queue_folder,
        "data_folder_out": queue_folder,
        "processed_folder": os.path.join(folder, "processed"),
        "control_folder": os.path.join(folder, "control"),
        "store_processed": False,
    }
    return Connection(transport=transport, transport_options=options)


def produce(transport: str, folder: str, name: str, count: int) -> None:
    module = importlib.import_module(transport.partition(":")[0])
    module.open = _slow_open  # the transport's module-level `open`: every write it makes is slow
    with _connection(transport, folder) as conn:
        queue = conn.SimpleQueue(QUEUE)
        for index in range(count):
            queue.put({"id": f"{name}-{index}", "padding": "x" * 200})


def consume(transport: str, folder: str, name: str) -> None:
    received, errors = [], []
    done = os.path.join(folder, "done")
    with _connection(transport, folder) as conn:
        queue = conn.SimpleQueue(QUEUE)
        idle_since = None
        while True:
            try:
                message = queue.get(block=True, timeout=0.05)
            except Empty:
                if not os.path.exists(done):
                    continue
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 1.0:
                    break
                continue
            except Exception as exc:  # what killed the Celery worker: a decode error on a half-written file
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            idle_since = None
            received.append(message.payload["id"])
            message.ack()
    with open(os.path.join(folder, f"{name}.json"), "w") as out:
        json.dump({"received": received, "errors": errors}, out)


if __name__ == "__main__":
    role, transport, folder, name, *rest = sys.argv[1:]
    if role == "produce":
        produce(transport, folder, name, int(rest[0]))
    else:
        consume(transport, folder, name)
