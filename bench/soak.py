"""The soak: `make run` for N minutes, watched from outside.

    python -m bench.soak [--minutes 30] [--port 8123] [--var-dir DIR] [--sample-seconds 30]
    make soak [SOAK_MINUTES=30]

Runs the real `make run` (supervisor, gunicorn, Celery worker and beat, the local fleet, the
traffic generator; SQLite and the filesystem broker in a fresh folder under VAR_DIR) and reports:
- unexpected exits, from the supervisor's state file (target 0);
- memory per Procfile process (the RSS of its whole process tree: gunicorn's and Celery's
  children, the fleet's workers), sampled every --sample-seconds: first sample after the warm-up,
  last, peak, growth per hour;
- the sizes of the database's tables at the end (rows), and of the database file.

Prints the report and writes it as JSON next to the run's data. Nothing here is imported by the product.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
WARM_UP_SECONDS = 120  # imports, migrations of the first minutes, caches: not growth


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree_rss_mib(pid: int, tree: dict[int, list[int]]) -> tuple[float, int]:
    """RSS of `pid` and all its descendants (MiB), and how many processes that is."""
    total, count, stack = 0, 0, [pid]
    while stack:
        current = stack.pop()
        total += _rss_kib(current)
        count += 1
        stack.extend(tree.get(current, []))
    return total / 1024, count


def _state(var_dir: Path) -> dict:
    try:
        return json.loads((var_dir / "processes.json").read_text())
    except (OSError, ValueError):
        return {}


def stop_make_run(make: subprocess.Popen, var_dir: Path) -> None:
    """Stop `make run` as Ctrl-C does (SIGTERM to its supervisor, which stops the rest); kill its
    process group only if it has not exited a minute later."""
    supervisor_pid = _state(var_dir).get("supervisor_pid")
    if supervisor_pid:
        try:
            os.kill(supervisor_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        make.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(make.pid, signal.SIGKILL)
        make.wait(timeout=10)


def _table_sizes(database: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in names}


def soak(*, minutes: float, port: int, var_dir: Path, sample_seconds: float) -> dict:
    log_path = var_dir / "make-run.log"
    env = {**os.environ, "PORT": str(port), "VAR_DIR": str(var_dir)}
    env.pop("DATABASE_URL", None)  # `make run` on its own SQLite database, as a user runs it
    env.pop("CELERY_BROKER_URL", None)
    with log_path.open("w") as log:
        make = subprocess.Popen(
            ["make", "run", f"PORT={port}", f"VAR_DIR={var_dir}"],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    samples: list[dict] = []
    started = time.monotonic()
    end = started + minutes * 60
    try:
        while time.monotonic() < end:
            if make.poll() is not None:
                raise SystemExit(f"make run exited with {make.returncode}; see {log_path}")
            processes = _state(var_dir).get("processes", {})
            if processes:
                tree = _children()
                sample = {"t": round(time.monotonic() - started, 1)}
                for name, process in processes.items():
                    if process.get("pid"):
                        sample[name] = _tree_rss_mib(process["pid"], tree)
                samples.append(sample)
            time.sleep(min(sample_seconds, max(0.0, end - time.monotonic())))
    finally:
        stop_make_run(make, var_dir)
    state = _state(var_dir)
    return {
        "minutes": minutes,
        "unexpected_exits": {
            name: process.get("exits", [])
            for name, process in state.get("processes", {}).items()
            if process.get("exits")
        },
        "stopped_cleanly": state.get("stopped") is True and make.returncode == 0,
        "memory": _memory(samples, warm_up=min(WARM_UP_SECONDS, minutes * 60 / 4)),
        "tables": _table_sizes(var_dir / "controlplane.sqlite3"),
        "database_mib": round((var_dir / "controlplane.sqlite3").stat().st_size / 2**20, 1),
        "samples": samples,
    }


def _memory(samples: list[dict], *, warm_up: float) -> dict:
    """Per process: MiB after the warm-up, at the end, at the peak, growth per hour."""
    after = [s for s in samples if s["t"] >= warm_up] or samples
    names = sorted({name for s in samples for name in s if name != "t"})
    report = {}
    for name in names:
        points = [(s["t"], s[name][0], s[name][1]) for s in after if name in s]
        if len(points) < 2:
            continue
        (t0, first, first_count), (t1, last, count) = points[0], points[-1]
        report[name] = {
            "first_mib": round(first, 1),
            "last_mib": round(last, 1),
            "peak_mib": round(max(p[1] for p in points), 1),
            "growth_mib_per_hour": round((last - first) / max(t1 - t0, 1) * 3600, 1),
            # The fleet's tree grows and shrinks with its pools: per process is the figure to watch.
            "first_mib_per_process": round(first / first_count, 1),
            "last_mib_per_process": round(last / count, 1),
            "first_processes": first_count,
            "processes": count,
        }
    return report


def _print(report: dict) -> None:
    print(f"soak of `make run`: {report['minutes']:g} min, stopped cleanly: {report['stopped_cleanly']}")
    exits = report["unexpected_exits"]
    print(f"unexpected exits: {sum(len(e) for e in exits.values())} (target 0)")
    for name, found in exits.items():
        print(f"  {name}: codes {[e['code'] for e in found]}")
    print("memory (RSS of each process tree, MiB): after warm-up -> end (peak), growth per hour")
    for name, m in report["memory"].items():
        print(
            f"  {name:<10} {m['first_mib']:>7.1f} -> {m['last_mib']:>7.1f} ({m['peak_mib']:.1f})"
            f"  {m['growth_mib_per_hour']:+.1f}/h  [{m['first_processes']} -> {m['processes']} processes,"
            f" {m['first_mib_per_process']:.1f} -> {m['last_mib_per_process']:.1f} MiB each]"
        )
    print(f"tables (rows), database file {report['database_mib']} MiB:")
    for name, rows in sorted(report["tables"].items(), key=lambda item: -item[1])[:15]:
        print(f"  {name:<40} {rows:>9,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--var-dir", default="", help="a fresh folder for the run (default: one under ./var)")
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    # Stopped early (Ctrl-C, or SIGTERM: a background job ignores SIGINT), it still stops `make run`.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit("soak stopped early"))
    if args.var_dir:
        var_dir = Path(args.var_dir).resolve()
        var_dir.mkdir(parents=True, exist_ok=True)
        if any(var_dir.iterdir()):
            parser.error(f"{var_dir} is not empty: the soak needs a fresh folder")
    else:
        (BASE_DIR / "var").mkdir(exist_ok=True)
        var_dir = Path(tempfile.mkdtemp(prefix="soak-", dir=BASE_DIR / "var"))
    report = soak(
        minutes=args.minutes, port=args.port or _free_port(), var_dir=var_dir, sample_seconds=args.sample_seconds
    )
    _print(report)
    (var_dir / "soak-report.json").write_text(json.dumps(report, indent=1))
    print(f"report: {var_dir / 'soak-report.json'}; log: {var_dir / 'make-run.log'}")
    return 0 if not report["unexpected_exits"] and report["stopped_cleanly"] else 1


if __name__ == "__main__":
    sys.exit(main())
