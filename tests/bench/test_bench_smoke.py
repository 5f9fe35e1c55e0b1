"""One smoke run of every benchmark (`python -m bench --quick`, as `make bench` runs them but with
short durations and small data): each runs end to end, prints its line and lands in the JSON file.
The figures themselves are not judged here (a busy machine measures anything); crashes, missing
lines and missing figures are. The emulator-based figures may be skipped where it is absent."""

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.__main__ import BENCHMARKS
from tests.contract.fakes.emulator import find_emulator

ROOT = Path(__file__).resolve().parents[2]
NEEDS_EMULATOR = ("(Pub/Sub emulator)", "replay:", "deadletters:")


def test_every_benchmark_runs_end_to_end_and_prints_its_line(tmp_path):
    database = f"{os.environ.get('TEST_DATABASE_NAME') or 'test'}_bench_smoke"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--database", database, "--results-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard: about 90 s on a quiet machine, 180 s with the whole suite beside it
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]

    [results_file] = tmp_path.glob("results-*.json")
    report = json.loads(results_file.read_text())
    results = report["results"]
    assert report["quick"] is True and report["machine"]["cpus"]
    assert {r["extra"]["benchmark"] for r in results} == set(BENCHMARKS)
    table = [line for line in run.stdout.splitlines() if " | " in line]
    assert table[0].split(" | ")[0].strip() == "benchmark"
    emulator = find_emulator() is not None
    for result in results:
        [line] = [line for line in table if line.startswith(result["name"] + " ")]
        verdict = line.rsplit("|", 1)[1].strip()
        assert verdict == result["verdict"], line
        if result["verdict"] == "SKIP":
            assert not emulator and any(mark in result["name"] for mark in NEEDS_EMULATOR), result
            continue
        assert result["verdict"] in ("PASS", "FAIL", "-"), result
        assert result["figure"] is not None, result
        if result["baseline"] is not None:
            assert result["ratio"] is not None and f"{result['ratio']:.2f}" in line, line
    names = [r["name"] for r in results]
    for expected in (
        "ingestion single (local, PostgreSQL)",
        "ingestion single vs one durable INSERT (local, PostgreSQL)",
        "ingestion group-commit floor vs echo (local, PostgreSQL)",
        "ingestion batch of 500 (local, PostgreSQL)",
        "ingestion single (Pub/Sub emulator)",
        "rollups: completion events folded",
        "load: p99 latency at 100/s",
        "load: errors at 100/s",
        "replay: dead letters republished, cap off",
        "deadletters: sync tick, 20 classes, every subscription read",
        "retention: rows after day 7 vs day 3",
    ):
        assert expected in names, names
    assert any(name.startswith("dashboards: overview, ") for name in names)
    assert any(name.startswith("polling: provider calls per tick, ") for name in names)
    assert any(name.startswith("exports: /metrics queries, ") for name in names)
    assert any(name.startswith("scale: overview, ") for name in names)
    assert any(name.startswith("scale: scaling controller tick with ") for name in names)
