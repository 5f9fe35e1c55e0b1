"""Plain SQL where the ORM's own Python, not the database, is what costs: every statement the
product writes or reads by hand for speed lives in this package, so there is one place to re-check
them: `writes` (multi-row INSERT and UPDATE), `reads` (rows loaded as the ORM loads them),
`tokens` (the API token check) and `report_fold` (worker reports folded into minute rollups).

Why: on the hot paths (every ingested event, every API request, the local queue's publish, a
replay's chunk of rows) building the ORM's statements cost more than running them. `bulk_create`
took ~0.25 ms of Python per statement whatever its row count and cannot say which rows went in
with `ignore_conflicts`; `bulk_update` builds a CASE per field with one WHEN per row (seconds of
Python for 500 rows of five fields); a token lookup through the ORM took 0.9 ms against 0.1 ms
here, a class lookup 0.75-1.0 ms against 0.17-0.21 ms.

The rule that keeps them honest: values go out through each field's own adaptation
(`get_db_prep_save` / `get_db_prep_value`; on PostgreSQL, `insert_rows` and `update_rows` pass
as they are the values that adaptation would return unchanged) and come back through the ORM's
own converters (`ops.get_db_converters`, `Field.get_db_converters`, `Model.from_db`), and a
SELECT is the ORM's own compiled statement where it can be, so the database sees, and callers
get, exactly what the ORM would send and load. Those are Django internals: the statements were
checked against Django CHECKED_WITH_DJANGO, and tests/workloads/test_fastsql.py fails on any other
version until its comparisons with the ORM have been re-run there and the constant moved.

The local provider's own statements stay with it (the queue's topic lookup and publish in
workloads/providers/local/queue/publish.py, the metrics' raw reads of grouped rows in
workloads/providers/local/metrics.py): they work on the embedded cloud's tables, which only that
provider may import (.importlinter), and build on `insert_rows` or the ORM's compiled SQL. The
poll's fold of a provider's worker reports into minute rollups (`report_fold.report_rollups_fold`)
is here: it takes the provider's SELECT as it is given (ReportRows), so no table of the provider's
is named here.
"""

# The Django version (major, minor) whose internals this package's statements were checked against.
CHECKED_WITH_DJANGO = (5, 2)
