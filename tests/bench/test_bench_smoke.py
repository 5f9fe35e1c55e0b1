"""Smoke runs of every benchmark (`python -m bench --quick`, as `make bench` runs them but with short
durations and small data): each runs end to end, prints its line and lands in the JSON file. The
figures themselves are not judged here (a busy machine measures anything); crashes, missing lines
and missing figures are. The emulator-based figures may be skipped where it is absent.

The benchmarks run in a few parts, one `python -m bench` each, so that pytest-xdist runs the parts
side by side on different workers instead of one run of several minutes on one (tests/scheduling.py
starts them first). Each part's bench database starts as a copy of the test run's migrated template
(`--template`) where there is one, so splitting adds no migrations."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS
from tests.contract.fakes.emulator import find_emulator

ROOT = Path(__file__).resolve().parents[2]
NEEDS_EMULATOR = ("(Pub/Sub emulator)", "replay:", "deadletters:")
# The parts, about equally long; the emulator's benchmarks share one part (and one emulator).
PARTS = {
    "emulator": ("ingestion", "replay", "deadletters"),
    "data": ("rollups", "dashboards", "polling", "exports", "retention"),
    "scale": ("scale",),
    "load": ("load",),
}
# The lines each benchmark prints, by name; a name ending in a space is the start of a name whose
# end depends on the sizes measured (e.g. "dashboards: overview, 30 d vs 3 d").
EXPECTED = {
    "ingestion": (
        "ingestion single (local, PostgreSQL)",
        "ingestion single vs one durable INSERT (local, PostgreSQL)",
        "ingestion group-commit floor vs echo (local, PostgreSQL)",
        "ingestion batch of 500 (local, PostgreSQL)",
        "ingestion single (Pub/Sub emulator)",
    ),
    "rollups": ("rollups: completion events folded",),
    "dashboards": ("dashboards: overview, ",),
    "polling": ("polling: provider calls per tick, ",),
    "exports": ("exports: /metrics queries, ",),
    "scale": ("scale: overview, ", "scale: scaling controller tick with "),
    "replay": ("replay: dead letters republished, cap off",),
    "deadletters": ("deadletters: sync tick, 20 classes, every subscription read",),
    "load": ("load: p99 latency at 100/s", "load: errors at 100/s"),
    "retention": ("retention: rows after day 7 vs day 3",),
}


def test_the_parts_run_every_benchmark_once_and_expect_its_lines():
    assert sorted(name for part in PARTS.values() for name in part) == sorted(BENCHMARKS)
    assert set(EXPECTED) == set(BENCHMARKS)


def _bench(names, part: str, results_dir: Path) -> subprocess.CompletedProcess:
    database = f"{os.environ.get('TEST_DATABASE_NAME') or 'test'}_bench_smoke_{part}"
    template = os.environ.get("TEST_DATABASE_TEMPLATE")  # set under xdist (tests/template_database.py)
    return subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *names, "--database", database, "--results-dir", str(results_dir)]
        + (["--template", template] if template else []),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard: the longest part takes about 40 s on a quiet machine
    )


def _named(names: list[str], expected: str) -> bool:
    return any(name == expected or (expected.endswith(" ") and name.startswith(expected)) for name in names)


@pytest.mark.parametrize("part", PARTS)
def test_each_benchmark_runs_end_to_end_and_prints_its_line(part, tmp_path):
    run = _bench(PARTS[part], part, tmp_path)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]

    [results_file] = tmp_path.glob("results-*.json")
    report = json.loads(results_file.read_text())
    results = report["results"]
    assert report["quick"] is True and report["machine"]["cpus"]
    assert {r["extra"]["benchmark"] for r in results} == set(PARTS[part])
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
    for benchmark in PARTS[part]:
        for expected in EXPECTED[benchmark]:
            assert _named(names, expected), (expected, names)
