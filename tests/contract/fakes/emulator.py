"""Google's Pub/Sub emulator (`cloud-pubsub-emulator`, Debian package google-cloud-cli-pubsub-emulator),
started on a free loopback port in its own process group."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.process_groups import stop_process_group

MISSING = (
    "Pub/Sub emulator not installed: apt-get install google-cloud-cli-pubsub-emulator (needs Java 11+), "
    "or set PUBSUB_EMULATOR_BIN to a cloud-pubsub-emulator binary"
)
RELATIVE = "platform/pubsub-emulator/bin/cloud-pubsub-emulator"


def find_emulator() -> str | None:
    explicit = os.environ.get("PUBSUB_EMULATOR_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    gcloud = shutil.which("gcloud")
    if gcloud:
        # gcloud lives in <sdk root>/bin (PATH usually holds a link to it), which is how gcloud finds
        # its own root; `gcloud info` (below) costs 1-2 s of CPU, 8 s on a loaded machine, in
        # every worker, so it is asked only when the layout is not the usual one.
        beside = Path(gcloud).resolve().parent.parent / RELATIVE
        if os.access(beside, os.X_OK):
            return str(beside)
        try:
            root = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            root = ""
        if root and os.access(Path(root) / RELATIVE, os.X_OK):
            return str(Path(root) / RELATIVE)
    return shutil.which("cloud-pubsub-emulator")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PubSubEmulator:
    def __init__(self, binary: str, data_dir: Path, *, startup_timeout: float = 90.0):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log_path = data_dir / "emulator.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # Its own session: stop() kills the wrapper script and the JVM it starts together.
        self._process = subprocess.Popen(
            [binary, "--host=127.0.0.1", f"--port={self.port}"],
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + startup_timeout
        while "Server started" not in self.log_path.read_text(errors="replace"):
            if self._process.poll() is not None or time.monotonic() > deadline:
                output = self.log_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"The Pub/Sub emulator did not start ({binary}):\n{output}")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process_group(self._process, grace_seconds=10)
        self._log.close()
