"""SQLite's REGEXP on RE2, a linear-time engine.

Django registers REGEXP on SQLite with Python's backtracking `re`, so a triage rule's glob (turned
into `.*` runs by `glob_regex`) or any `__regex` lookup could take time exponential or polynomial
in the text on the embedded database `make run` uses. PostgreSQL's own engine does not backtrack
this way. Registered for every SQLite connection from WorkloadsConfig.ready().
"""

from django.db.backends.signals import connection_created

from workloads.domain.schemas import compile_re2


def _re2_regexp(pattern, string):
    # Django's own function, with RE2 instead of `re` (same None and non-text handling).
    if pattern is None or string is None:
        return None
    if not isinstance(string, str):
        string = str(string)
    return bool(compile_re2(pattern).search(string))


def use_re2_for_sqlite_regexp(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("REGEXP", 2, _re2_regexp, deterministic=True)


def register() -> None:
    connection_created.connect(use_re2_for_sqlite_regexp, dispatch_uid="workloads.sqlite_regexp")
