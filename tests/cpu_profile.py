"""Where the test suite's CPU goes: an opt-in pytest plugin, off unless TEST_CPU_PROFILE names a folder.

    TEST_CPU_PROFILE=/tmp/cpu make test        # or any pytest run, with or without -n
    .venv/bin/python -m tests.cpu_profile /tmp/cpu

Each process (the xdist controller, every worker) writes `<folder>/<worker>.jsonl`:

- per test phase (setup, call, teardown), the CPU seconds of the worker itself (all its threads),
  of its child processes (those reaped: RUSAGE_CHILDREN; those still alive, with their own reaped
  children: /proc/<pid>/stat), and of the PostgreSQL backends connected to the worker's test
  databases (found by their process title, so a subprocess's backends count too, unless one opens
  and closes inside a single phase: that CPU is missed);
- per fixture, the exclusive CPU of its set-up and its tear-down (the worker and its own database
  backends; nested fixtures are not counted twice), e.g. pytest-django's table flush after each
  transactional test is the tear-down of `_django_db_helper`;
- per worker, the CPU spent before the first test (imports, Django set-up, collection).

The summary ranks directories, files, fixtures and tests by CPU. Measuring costs little (a listing
of /proc per phase), but it is CPU too: compare profiles with profiles, not with plain runs.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

ENV = "TEST_CPU_PROFILE"
TICK = os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reaped_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the third on (state, ppid, ...)


def _process_cpu(fields: list[str], *, with_children: bool) -> float:
    # utime, stime, cutime, cstime are the stat file's fields 14-17 (11-14 here)
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def _descendants() -> list[tuple[int, int, float]]:
    """(pid, parent pid, own CPU) of every live descendant of this process."""
    found, pending = [], [os.getpid()]
    while pending:
        parent = pending.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                pids = [int(child) for child in children.read_text().split()]
            except OSError:
                continue
            for pid in pids:
                fields = _stat(pid)
                if fields:
                    found.append((pid, parent, _process_cpu(fields, with_children=False)))
                    pending.append(pid)
    return found


class Descendants:
    """The CPU of every process this one started, directly or not, counted once and never going down.

    Each live descendant's own CPU is sampled (its last sample stays counted after it ends). What
    RUSAGE_CHILDREN gains beyond the last samples of the direct children it reaped is added too:
    the end of a sampled child, and all of a short one that started and ended between two samples
    (with its own reaped children). Missed: a grandchild that lives between two samples only and is
    not reaped by a child (daemonised), and a sampled grandchild's last moments."""

    def __init__(self):
        self.total = 0.0
        self.last: dict[int, tuple[int, float]] = {}  # pid -> (parent, own CPU at the last sample)
        self.reaped = _reaped_children_cpu()
        self.credit = 0.0  # CPU of ended direct children already counted from their samples

    def cpu(self) -> float:
        alive = {pid: (parent, cpu) for pid, parent, cpu in _descendants()}
        for pid, (_, cpu) in alive.items():
            self.total += max(0.0, cpu - self.last.get(pid, (0, 0.0))[1])
        for pid in set(self.last) - set(alive):
            parent, cpu = self.last[pid]
            if parent == os.getpid():
                self.credit += cpu
        self.last = alive
        reaped = _reaped_children_cpu()
        gained, self.reaped = reaped - self.reaped, reaped
        paid = min(gained, self.credit)
        self.credit -= paid
        self.total += gained - paid
        return self.total


class Profiler:
    def __init__(self, folder: Path, worker: str):
        self.worker = worker
        self.out = open(folder / f"{worker}.jsonl", "a")  # noqa: SIM115 - closed at session end
        self.database_names: tuple[str, ...] = ()
        self.backend_titles: dict[int, bool] = {}  # pid -> is one of this worker's database backends
        self.backend_cpu: dict[int, float] = {}  # the last CPU seen of each backend still alive
        self.backend_total = 0.0  # CPU of this worker's backends, including those gone since
        self.fixture_stack: list[float] = []  # CPU of nested fixtures, to subtract from their parent
        self.fixtures: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
        self.descendants = Descendants()
        self.first_test_seen = False
        self.start = time.monotonic()

    def write(self, record: dict) -> None:
        self.out.write(json.dumps(record) + "\n")

    # --- PostgreSQL backends of this worker's databases ------------------------------------------
    def _is_ours(self, pid: int) -> bool:
        if pid not in self.backend_titles:
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                return False
            words = title.replace("\0", " ").split()
            # "postgres: 15/main: <user> <database> <client> <state>"
            self.backend_titles[pid] = (
                bool(words) and words[0] == "postgres:" and any(name in words[2:5] for name in self.database_names)
            )
        return self.backend_titles[pid]

    def backends_cpu(self) -> float:
        if not self.database_names:
            return self.backend_total
        alive = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and self._is_ours(int(entry.name)):
                fields = _stat(int(entry.name))
                if fields:
                    alive[int(entry.name)] = _process_cpu(fields, with_children=False)
        for pid, cpu in alive.items():
            self.backend_total += cpu - self.backend_cpu.get(pid, 0.0)
        for pid in set(self.backend_cpu) - set(alive):
            self.backend_titles.pop(pid, None)  # a pid may come back as another process
        self.backend_cpu = alive
        return self.backend_total

    def note_databases(self) -> None:
        from django.db import connections

        names = tuple(
            connections[alias].settings_dict["NAME"]
            for alias in connections
            if connections[alias].vendor == "postgresql"
        )
        if names != self.database_names:
            self.database_names = names
            self.backend_titles.clear()

    def sample(self) -> dict[str, float]:
        return {
            "self": _own_cpu(),
            "children": self.descendants.cpu(),
            "postgres": self.backends_cpu(),
        }

    # --- fixtures: exclusive CPU of set-up and tear-down ----------------------------------------
    def begin(self) -> float:
        self.fixture_stack.append(0.0)
        return _own_cpu() + self._own_backends_cpu()

    def end(self, name: str, phase: str, start: float) -> None:
        spent = _own_cpu() + self._own_backends_cpu() - start
        nested = self.fixture_stack.pop()
        if self.fixture_stack:
            self.fixture_stack[-1] += spent
        entry = self.fixtures[(name, phase)]
        entry[0] += spent - nested
        entry[1] += 1

    def _own_backends_cpu(self) -> float:
        total = 0.0
        for pid in self._own_backend_pids():
            fields = _stat(pid)
            if fields:
                total += _process_cpu(fields, with_children=False)
        return total

    @staticmethod
    def _own_backend_pids() -> list[int]:
        if "django.db" not in sys.modules:
            return []
        from django.db import connections

        pids = []
        for alias in connections:
            connection = connections[alias]
            if connection.vendor == "postgresql" and connection.connection is not None:
                try:
                    pids.append(connection.connection.info.backend_pid)
                except Exception:  # noqa: BLE001 - a closed or broken connection has none
                    continue
        return pids


def _worker_id(config) -> str:
    return getattr(config, "workerinput", {}).get("workerid", "controller")


class Plugin:
    def __init__(self, profiler: Profiler):
        self.profiler = profiler

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        start = self.profiler.begin()
        try:
            return (yield)
        finally:
            self.profiler.end(fixturedef.argname, "setup", start)

    def _phase(self, item, phase: str):
        profiler = self.profiler
        if not profiler.first_test_seen:
            profiler.first_test_seen = True
            profiler.write({"kind": "start", "cpu": _own_cpu(), "wall": time.monotonic() - profiler.start})
        before = profiler.sample()
        wall = time.monotonic()
        try:
            yield
        finally:
            if phase == "setup":
                profiler.note_databases()  # the test databases exist once the first set-up ran
            after = profiler.sample()
            record = {key: round(after[key] - before[key], 4) for key in after}
            record.update(kind="phase", test=item.nodeid, phase=phase, wall=round(time.monotonic() - wall, 4))
            profiler.write(record)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        return (yield from self._phase(item, "setup"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        return (yield from self._phase(item, "call"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item, nextitem):
        return (yield from self._phase(item, "teardown"))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        profiler = self.profiler
        for (name, phase), (cpu, count) in profiler.fixtures.items():
            profiler.write({"kind": "fixture", "fixture": name, "phase": phase, "cpu": round(cpu, 4), "count": count})
        sample = profiler.sample()
        profiler.write(
            {
                "kind": "end",
                "cpu": sample["self"],
                "children": sample["children"],
                "postgres": sample["postgres"],
                "wall": time.monotonic() - profiler.start,
            }
        )
        profiler.out.close()


def install(config) -> None:
    folder = os.environ.get(ENV)
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    profiler = Profiler(Path(folder), _worker_id(config))
    _wrap_fixture_teardown(profiler)
    config.pluginmanager.register(Plugin(profiler), "cpu_profile")


def _wrap_fixture_teardown(profiler: Profiler) -> None:
    # pytest has a hook after a fixture's finalizers but none before: time FixtureDef.finish itself.
    from _pytest.fixtures import FixtureDef

    finish = FixtureDef.finish

    def timed_finish(self, request):
        if self.cached_result is None:
            return finish(self, request)
        start = profiler.begin()
        try:
            return finish(self, request)
        finally:
            profiler.end(self.argname, "teardown", start)

    FixtureDef.finish = timed_finish


# --- the summary -----------------------------------------------------------------------------------
def summarize(folder: Path, top: int = 40) -> None:
    phases, fixtures, workers = [], defaultdict(lambda: [0.0, 0]), {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["kind"] == "phase":
                phases.append(record)
            elif record["kind"] == "fixture":
                entry = fixtures[(record["fixture"], record["phase"])]
                entry[0] += record["cpu"]
                entry[1] += record["count"]
            else:
                workers.setdefault(path.stem, {})[record["kind"]] = record

    def total(record):
        return record["self"] + record["children"] + record["postgres"]

    grand = sum(total(record) for record in phases)
    print(f"{len({r['test'] for r in phases})} tests, {grand:.0f} CPU-s in test phases")
    print("\nper worker: CPU before the first test (imports, Django, collection)")
    print("            / at the end (self, children, postgres)")
    for worker, records in sorted(workers.items()):
        start, end = records.get("start", {}), records.get("end", {})
        print(
            f"  {worker:10} {start.get('cpu', 0):7.1f} / {end.get('cpu', 0):7.1f} {end.get('children', 0):7.1f}"
            f" {end.get('postgres', 0):7.1f}   wall {end.get('wall', 0):6.0f}"
        )

    def table(title, key, limit):
        groups = defaultdict(lambda: defaultdict(float))
        for record in phases:
            group = groups[key(record)]
            for part in ("self", "children", "postgres"):
                group[part] += record[part]
            group[record["phase"]] += total(record)
            group["wall"] += record["wall"]
        print(f"\n{title}: CPU-s total = self + children + postgres | setup call teardown | wall-s")
        ranked = sorted(groups.items(), key=lambda kv: -(kv[1]["self"] + kv[1]["children"] + kv[1]["postgres"]))
        for name, group in ranked[:limit]:
            cpu = group["self"] + group["children"] + group["postgres"]
            parts = " ".join(f"{group[part]:6.1f}" for part in ("self", "children", "postgres"))
            phases_ = " ".join(f"{group[part]:6.1f}" for part in ("setup", "call", "teardown"))
            print(f"  {cpu:7.1f} = {parts} | {phases_} | {group['wall']:6.1f}  {name}")

    table("by directory", lambda r: r["test"].split("::")[0].rsplit("/", 1)[0], 30)
    table("by file", lambda r: r["test"].split("::")[0], top)
    table("by test (parameters apart)", lambda r: r["test"], top)
    print("\nby fixture (exclusive CPU-s of the worker and its own backends; count)")
    for (name, phase), (cpu, count) in sorted(fixtures.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {cpu:7.1f} {count:6d}  {name} ({phase})")


if __name__ == "__main__":
    summarize(Path(sys.argv[1]))
