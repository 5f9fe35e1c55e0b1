"""The embedded broker of `make run` (controlplane/broker.py) with several producing and consuming
processes: every message is received exactly once and no consumer meets a half-written file.

Real processes (tests/hardening/broker_stress.py), bounded in count and time. The producers are
slow writers (each write lands in two halves), which makes kombu's own filesystem transport fail
every run instead of once in hours: its case is kept, as a strict xfail, to show the test bites."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from kombu import Connection

from controlplane.broker import Transport
from controlplane.celery import app

ROOT = Path(__file__).resolve().parents[2]
PRODUCERS, CONSUMERS, MESSAGES_EACH = 3, 3, 150
OURS = "controlplane.broker:Transport"
KOMBUS = "kombu.transport.filesystem:Transport"


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.hardening.broker_stress", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stress(transport: str, folder: Path) -> tuple[Counter, list[str]]:
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir()
    consumers = [_start("consume", transport, str(folder), f"consumer{n}") for n in range(CONSUMERS)]
    producers = [_start("produce", transport, str(folder), f"p{n}", str(MESSAGES_EACH)) for n in range(PRODUCERS)]
    for process in producers:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output
    (folder / "done").touch()
    received: Counter = Counter()
    errors: list[str] = []
    for number, process in enumerate(consumers):
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output
        report = json.loads((folder / f"consumer{number}.json").read_text())
        received.update(report["received"])
        errors.extend(report["errors"])
    return received, errors


def _expected() -> Counter:
    return Counter(f"p{p}-{i}" for p in range(PRODUCERS) for i in range(MESSAGES_EACH))


def test_every_message_once_and_no_decode_error(tmp_path):
    received, errors = _stress(OURS, tmp_path)
    assert errors == []
    assert received == _expected()
    assert not list((tmp_path / "queue").iterdir())  # no temporary file left behind


@pytest.mark.xfail(strict=True, reason="kombu's filesystem transport lets a consumer read a half-written file")
def test_kombus_own_transport_fails_the_same_stress(tmp_path):
    received, errors = _stress(KOMBUS, tmp_path)
    assert errors == [] and received == _expected()


def test_the_filesystem_url_of_the_settings_is_served_by_the_safe_transport():
    assert app.conf.broker_url  # the Celery app is loaded: it registers the transport
    with Connection("filesystem://") as conn:
        assert isinstance(conn.transport, Transport)
