"""tests/scheduling.py names tests that exist, and puts them first without crossing pytest-django's runs."""

import ast
from pathlib import Path

import pytest

from tests.scheduling import LONG_RUNNING, SPREAD

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("node_id", LONG_RUNNING)
def test_every_long_running_entry_names_a_test_function(node_id):
    path, name = node_id.split("::")
    tree = ast.parse((ROOT / path).read_text())
    assert name in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, node_id


def test_the_makefile_hands_out_chunks_of_spread():
    assert f"--maxschedchunk {SPREAD}" in (ROOT / "Makefile").read_text()


def test_this_session_runs_long_tests_first_and_keeps_the_runs_apart(request):
    from tests.scheduling import _base_id, _run

    items = request.session.items
    runs = [_run(item) for item in items]
    long = {node_id for node_id in LONG_RUNNING}
    # Runs never interleave: every transactional test comes after every test in a transaction.
    last_db = max((n for n, run in enumerate(runs) if run == 0), default=-1)
    first_transactional = min((n for n, run in enumerate(runs) if run == 1), default=len(items))
    assert last_db < first_transactional
    # A long test in a transaction, or without a database, is among the first of its run.
    for n, item in enumerate(items):
        if _base_id(item) in long and runs[n] in (0, 2):
            assert n < SPREAD * len(LONG_RUNNING) + 100, item.nodeid
