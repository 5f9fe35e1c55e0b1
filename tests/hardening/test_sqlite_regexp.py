"""On SQLite (what `make run` uses) REGEXP runs on RE2, so a triage glob or a `__regex` lookup cannot
backtrack: Django's own REGEXP there is Python's `re`."""

import pytest
from django.db import OperationalError, connections

from workloads.models.deadletters import glob_regex

pytestmark = pytest.mark.django_db(databases=["contract_sqlite"])


def _regexp(pattern: str, text: str):
    with connections["contract_sqlite"].cursor() as cursor:
        cursor.execute("SELECT %s REGEXP %s", [text, pattern])
        return cursor.fetchone()[0]


def test_sqlite_regexp_is_re2_which_has_no_backreferences():
    # Python's re matches "aa" against (a)\1; RE2 refuses the pattern, which proves which engine runs.
    with pytest.raises(OperationalError, match="user-defined function raised exception"):
        _regexp(r"^(a)\1$", "aa")


def test_a_nested_quantifier_answers_at_once_on_re2():
    # Exponential on a backtracking engine (41 characters froze a worker); linear on RE2.
    assert _regexp(r"^(a+)+$", "a" * 41 + "!") == 0


def test_triage_globs_still_match_case_insensitively_as_on_postgresql():
    assert _regexp("(?i)" + glob_regex("Unavailable*"), "unavailable: backend down") == 1
    assert _regexp("(?i)" + glob_regex("Unavailable*"), "Timeout") == 0
    assert _regexp(glob_regex("a?c"), None) is None
