"""Run the benchmarks: `python -m bench [--quick] [name ...]` (`make bench` runs them all).

Prints one aligned line per figure (name | figure | baseline | ratio | target | PASS/FAIL) and
writes every result with the machine it ran on to var/bench/results-<timestamp>.json. The exit
code is 0 when every benchmark ran, whether or not its targets were met (a benchmark measures;
it does not gate), and 1 when one crashed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import socket
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.common import BASE_DIR, Result, database_url, drop_database, migrate, recreate_database, setup_django

BENCHMARKS = (
    "ingestion",
    "rollups",
    "dashboards",
    "polling",
    "exports",
    "scale",
    "replay",
    "deadletters",
    "load",
    "retention",
)


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="name", help=f"benchmarks to run (default: all): {BENCHMARKS}")
    parser.add_argument("--quick", action="store_true", help="short durations and small data (a smoke run)")
    parser.add_argument("--database", default="", help="bench database name (default: controlplane_bench)")
    parser.add_argument("--results-dir", default=str(BASE_DIR / "var" / "bench"), help="where the JSON goes")
    parser.add_argument("--load-rate", type=float, default=0, help="events/s of the load benchmark (default 200)")
    parser.add_argument("--keep-database", action="store_true", help="do not drop the bench database at the end")
    parser.add_argument(
        "--template",
        default="",
        help="start the bench database as a copy of this migrated database instead of migrating an empty one",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    args.names = args.names or list(BENCHMARKS)
    return args


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _row(result: Result) -> list[str]:
    figure = "-" if result.figure is None else f"{_number(result.figure)} {result.unit}"
    baseline = "-" if result.baseline is None else f"{_number(result.baseline)} {result.baseline_unit or result.unit}"
    ratio = "-" if result.ratio is None else f"{result.ratio:.2f}"
    target = result.target.describe(result.unit) if result.target else "-"
    return [result.name, figure, baseline, ratio, target, result.verdict]


def print_table(results: list[Result], out=sys.stdout) -> None:
    header = ["benchmark", "figure", "baseline", "ratio", "target", "result"]
    rows = [header] + [_row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {1, 2, 3}
    for row in rows:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        print(" | ".join(cells).rstrip(), file=out)
    for result in results:
        why = result.error or result.skipped or result.note
        if why:
            print(f"  {result.name}: {why}", file=out)


def _load() -> tuple[float, ...] | None:
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def _machine(load_at_start) -> dict:
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": _load(),
    }


def main(argv=None) -> int:
    args = _arguments(argv)
    url = database_url(args.database or None)
    started = datetime.now(UTC)
    load_at_start = _load()  # the machine may be shared: say how busy it was
    print(
        f"Benchmarks {', '.join(args.names)}{' (quick)' if args.quick else ''} on {url.rsplit('/', 1)[1]}", flush=True
    )
    recreate_database(url, template=args.template)
    setup_django(url)
    migrate()  # on a copy of a migrated template: nothing to apply, unless the template missed one
    results: list[Result] = []
    crashed = False
    try:
        for name in args.names:
            clock = time.monotonic()
            try:
                found = importlib.import_module(f"bench.{name}").run(args)
            except Exception as exc:
                crashed = True
                traceback.print_exc()
                found = [Result(name, None, "", error=f"{type(exc).__name__}: {exc}")]
            for result in found:
                result.extra.setdefault("benchmark", name)
            results += found
            print(f"  {name}: {time.monotonic() - clock:.0f} s", flush=True)
    finally:
        from bench.common import stop_emulator

        stop_emulator()
        if not args.keep_database:
            drop_database(url)

    print()
    print_table(results)
    failed = [r.name for r in results if r.verdict == "FAIL"]
    skipped = [r.name for r in results if r.verdict == "SKIP"]
    errors = [r.name for r in results if r.verdict == "ERROR"]
    print()
    if errors:
        print(f"CRASHED ({len(errors)}): {'; '.join(errors)}  (see the traceback above)")
    if failed:
        print(f"TARGETS MISSED ({len(failed)}): {'; '.join(failed)}  (a measurement, not a failure of the run)")
    elif not errors:
        print("Every target with a figure was met.")
    if skipped:
        print(f"Skipped ({len(skipped)}): {'; '.join(skipped)}")

    machine = _machine(load_at_start)
    directory = Path(args.results_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"results-{started:%Y%m%dT%H%M%SZ}.json"
    path.write_text(
        json.dumps(
            {
                "started_at": started.isoformat(),
                "finished_at": datetime.now(UTC).isoformat(),
                "quick": args.quick,
                "benchmarks": args.names,
                "machine": machine,
                "results": [r.as_dict() for r in results],
            },
            indent=2,
        )
    )
    loads = " -> ".join(
        f"{load[0]:.1f}" for load in (machine["load_average_at_start"], machine["load_average_at_end"]) if load
    )
    print(f"Machine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}; load average {loads}")
    print(f"Results: {path}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
