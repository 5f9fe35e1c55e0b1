"""The state file of `make run`'s supervisor (controlplane/supervisor.py): which processes run and
how they exited. The supervisor writes it; every page reads it to warn about unexpected exits
(`recent_exits`, through controlplane.context_processors.process_exits). Outside `make run` there
is no such file and nothing is shown."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

MAX_EXITS_KEPT = 20  # per process: the file stays small however long the demo runs
RECENT_SECONDS = 3600  # exits older than this are no longer shown


def write_state(path: Path, state: dict) -> None:
    """Replace the file whole (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with open(descriptor, "w") as file:
        json.dump(state, file)
    os.replace(temporary, path)


def read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def recent_exits(path: Path, *, now: float | None = None) -> list[dict]:
    """Unexpected exits of the last hour, newest first: name, code, at (epoch), restarts, running."""
    state = read_state(path)
    if not state:
        return []
    now = time.time() if now is None else now
    found = []
    for name, process in state.get("processes", {}).items():
        for exit_ in process.get("exits", []):
            if now - exit_["at"] <= RECENT_SECONDS:
                found.append(
                    {
                        "name": name,
                        "code": exit_["code"],
                        "at": exit_["at"],
                        "minutes_ago": int((now - exit_["at"]) // 60),
                        "restarts": process.get("restarts", 0),
                        "running": process.get("pid") is not None,
                    }
                )
    return sorted(found, key=lambda e: e["at"], reverse=True)
