"""Worker reports folded into minute rollups in one statement (the reason: workloads/fastsql/__init__.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connections

from workloads.domain import histogram
from workloads.models import MetricRollup, Resolution
from workloads.providers.base import ReportRows

# --- worker reports folded into minute rollups -------------------------------------------------------
# Why here: the poll of the local provider on PostgreSQL turned 12,000 (class, minute) report sums into
# Points, then cells, then rows and counter gains in Python, about a second per tick; this folds a
# provider's ReportRows (workloads/providers/base.py) into the minute rollups, and works out the
# running counters' gains, in one statement where the rows are. It writes what the generic path of
# workloads/services/polling.py and counters.py writes, bit for bit
# (tests/workloads/test_report_fold_sql.py); a change to either must be made to both.
REPORT_COUNTERS = ("completed", "failed", "records", "tokens")
_REPORT_FOLD_COLUMNS = (*REPORT_COUNTERS, "latency_buckets", "latency_count", "latency_sum", "latency_good")
# Serializes the polls that fold in SQL: their counter gains come from the minutes as the fold's own
# statement saw them, so a second poll must not fold before the first one's rows are committed.
_REPORT_FOLD_LOCK = 0x726F6C6C7570  # "rollup"
_FOLD_WORK_MEM = "64MB"


@dataclass(frozen=True)
class FoldClass:
    """One class as the fold needs it. `latency_below` and `latency_share`: its latency SLO's
    threshold as histogram.count_below reads it (whole buckets below that index, plus that share of
    the bucket at it; None: no latency SLO, or no share). `newest_other`: its newest sample in the
    poll's other metrics. `per_record` and `per_1k_tokens`: its rates (None: no rates)."""

    class_id: int
    slug: str
    latency_below: int | None
    latency_share: float | None
    newest_other: datetime | None
    per_record: Decimal | None
    per_1k_tokens: Decimal | None


@dataclass
class FoldedClass:
    """What the fold wrote for one class and what its counters gained: the minutes written (their
    starts), its newest report step (capped at now), and the gains as counters_advance adds them
    (`latency_sum` None: no minute's histogram gained; `cost` None: no rates)."""

    class_id: int
    minutes: list[int]  # since the epoch (integers: 12,000 timestamps took 0.1 s to load)
    newest: datetime
    gains: dict[str, int]
    latency: list[int]
    latency_sum: float | None
    records_tokens_cost: Decimal | None


def _half_even_micro(amount: str) -> str:
    """`amount` (numeric) rounded to 6 places half to even, as Decimal.quantize rounds (PostgreSQL's
    round() takes halves away from zero)."""
    scaled = f"({amount}) * 1000000"
    return (
        f"CASE WHEN abs({scaled} - trunc({scaled})) = 0.5 AND mod(trunc({scaled}), 2) = 0 "
        f"THEN trunc({amount}, 6) ELSE round({amount}, 6) END"
    )


def report_rollups_fold(
    rows: ReportRows,
    classes: Sequence[FoldClass],
    *,
    buckets_from: datetime,
    buckets_to: datetime,
    step_seconds: int,
    now: datetime,
    fetched_at: datetime,
) -> list[FoldedClass]:
    """Upsert the minute rollups of `rows` (PostgreSQL; minutes in [buckets_from, buckets_to), each
    step's start, the steps aligned to whole minutes) for `classes`, setting the report columns,
    `fetched_at` and the age of the class's newest sample (this and its other metrics'), and
    return per class what was written and gained over the minutes' values before. Call it in the
    poll's transaction; it takes a transaction-level lock that serializes such polls."""
    connection = connections[rows.using]
    quote = connection.ops.quote_name
    buckets = range(histogram.BUCKETS)
    table = quote(MetricRollup._meta.db_table)
    b = [f"s.b{i}" for i in buckets]
    below = " ".join(f"WHEN {i} THEN {' + '.join(b[:i]) or '0'}" for i in buckets)
    at = "CASE c.latency_below " + " ".join(f"WHEN {i} THEN {b[i]}" for i in buckets) + " END"
    # histogram.count_below: float(the whole buckets' sum), plus the share of the bucket at the index.
    latency_good = (
        f"CASE WHEN c.latency_below IS NULL THEN 0.0 ELSE CAST(CASE c.latency_below {below} END AS float8)"
        f" + CASE WHEN c.latency_share IS NOT NULL AND {at} <> 0 THEN CAST({at} AS float8) * c.latency_share"
        " ELSE 0.0 END END"
    )
    params: list = [*rows.params]
    bucket_names = ", ".join(f"b{i}" for i in buckets)
    cells = f"""
        src (slug, step_end, {", ".join(REPORT_COUNTERS)}, latency_count, latency_sum, {bucket_names})
            AS MATERIALIZED ({rows.sql}),
        classes AS (
            SELECT * FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::float8[], %s::timestamptz[],
                                 %s::numeric[], %s::numeric[])
                AS c (class_id, slug, latency_below, latency_share, newest_other, per_record, per_1k_tokens)
        ),
        cells AS (
            SELECT c.class_id, s.step_end - make_interval(secs => %s) AS bucket, s.step_end,
                   {", ".join(f"COALESCE(s.{name}, 0) AS {name}" for name in REPORT_COUNTERS)},
                   COALESCE(s.latency_count, 0) AS latency_count, COALESCE(s.latency_sum, 0.0) AS latency_sum,
                   to_jsonb(ARRAY[{", ".join(b)}]) AS latency_buckets, {latency_good} AS latency_good,
                   {", ".join(b)}, c.per_record, c.per_1k_tokens,
                   -- The class's newest sample, on each of its rows: a window, not a join with a CTE
                   -- (the planner guesses a CTE's rows, and a low guess nests loops over 12,000 rows).
                   GREATEST(c.newest_other, LEAST(MAX(s.step_end) OVER (PARTITION BY c.class_id), %s::timestamptz))
                       AS newest
              FROM src s JOIN classes c ON c.slug = s.slug
             WHERE s.step_end - make_interval(secs => %s) >= %s AND s.step_end - make_interval(secs => %s) < %s
        )"""
    params += [
        [c.class_id for c in classes],
        [c.slug for c in classes],
        [c.latency_below for c in classes],
        [c.latency_share for c in classes],
        [c.newest_other for c in classes],
        [c.per_record for c in classes],
        [c.per_1k_tokens for c in classes],
        step_seconds,
        now,
        step_seconds,
        buckets_from,
        step_seconds,
        buckets_to,
    ]
    # Every column of a new row: the report's, the poll's, and the model's defaults for the others.
    columns, values = [], []
    for field in MetricRollup._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(quote(field.column))
        if field.name == "workload_class":
            values.append("ce.class_id")
        elif field.name == "bucket_start":
            values.append("ce.bucket")
        elif field.name in _REPORT_FOLD_COLUMNS:
            values.append(f"ce.{field.column}")
        elif field.name == "newest_sample_age_seconds":
            values.append("GREATEST(0.0, CAST(EXTRACT(EPOCH FROM (%s::timestamptz - ce.newest)) AS float8))")
            params.append(fetched_at)
        else:
            value = (
                Resolution.MINUTE if field.name == "resolution" else fetched_at if field.name == "fetched_at" else None
            )
            if value is None:
                value = field.get_default()
            # Typed: an INSERT ... SELECT does not take a bare parameter's type from its column.
            values.append(f"CAST(%s AS {field.db_type(connection)})")
            params.append(field.get_db_prep_save(value, connection))
    params += [Resolution.MINUTE.value, buckets_from, buckets_to]  # the old minutes' (after the INSERT's)
    updates = ", ".join(
        f"{name} = EXCLUDED.{name}" for name in (*_REPORT_FOLD_COLUMNS, "fetched_at", "newest_sample_age_seconds")
    )
    # A bucket's gain over the minute's old histogram; the common cases without reading the old
    # jsonb bucket by bucket: no old row, or (a re-poll) an unchanged histogram.
    gains = ", ".join(
        f"CASE WHEN p.unchanged IS NULL THEN GREATEST(0, p.b{i}) WHEN p.unchanged THEN 0"
        f" ELSE GREATEST(0, p.b{i} - COALESCE(CAST(p.old_latency_buckets ->> {i} AS bigint), 0)) END AS g{i}"
        for i in buckets
    )
    counter_gains = ", ".join(
        f"GREATEST(0, p.{name} - COALESCE(p.old_{name}, 0)) AS {name}" for name in REPORT_COUNTERS
    )
    new_buckets = ", ".join(f"ce.b{i}" for i in buckets)
    minute_gained = " + ".join(f"g.g{i}" for i in buckets)  # the minute's histogram gain
    records_cost = _half_even_micro("CAST(g.records AS numeric) * g.per_record")
    tokens_cost = _half_even_micro("CAST(g.tokens AS numeric) / 1000 * g.per_1k_tokens")
    sql = f"""
        WITH {cells},
        written AS (
            INSERT INTO {table} ({", ".join(columns)})
            SELECT {", ".join(values)} FROM cells ce
            ON CONFLICT (workload_class_id, resolution, bucket_start) DO UPDATE SET {updates}
        ),
        gains AS MATERIALIZED (  -- each gain worked out once (the SELECT below reads them twice)
            SELECT p.class_id, p.bucket, p.newest, p.per_record, p.per_1k_tokens,
                   {counter_gains},
                   p.latency_sum - COALESCE(p.old_latency_sum, 0.0) AS latency_sum, {gains}
              FROM (SELECT ce.class_id, ce.bucket, ce.newest, ce.per_record, ce.per_1k_tokens, ce.latency_sum,
                           {", ".join(f"ce.{name}" for name in REPORT_COUNTERS)}, {new_buckets},
                           {", ".join(f"o.{name} AS old_{name}" for name in REPORT_COUNTERS)},
                           o.latency_sum AS old_latency_sum, o.latency_buckets AS old_latency_buckets,
                           o.latency_buckets = ce.latency_buckets AS unchanged
                      FROM cells ce
                      -- The minutes as they were before this statement (its INSERT is not seen
                      -- here): the window's, read by range and hashed (the planner settings below).
                      LEFT JOIN (
                          SELECT m.workload_class_id, m.bucket_start, m.latency_buckets, m.latency_sum,
                                 {", ".join(f"m.{name}" for name in REPORT_COUNTERS)}
                            FROM {table} m
                           WHERE m.resolution = %s AND m.bucket_start >= %s AND m.bucket_start < %s
                      ) o ON o.workload_class_id = ce.class_id AND o.bucket_start = ce.bucket
                    OFFSET 0  -- not merged into the SELECT above: `unchanged` compared once, not per bucket
                   ) p
        )
        SELECT g.class_id, array_agg(CAST(EXTRACT(EPOCH FROM g.bucket) AS bigint) / 60 ORDER BY g.bucket), g.newest,
               {", ".join(f"CAST(SUM(g.{name}) AS bigint)" for name in REPORT_COUNTERS)},
               ARRAY[{", ".join(f"CAST(SUM(g.g{i}) AS bigint)" for i in buckets)}],
               SUM(GREATEST(0.0, g.latency_sum) ORDER BY g.bucket) FILTER (WHERE {minute_gained} > 0),
               SUM(({records_cost}) + ({tokens_cost}))
          FROM gains g
         GROUP BY g.class_id, g.newest
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_REPORT_FOLD_LOCK])
        # The per-minute bucket sums of 12,000 minutes (41 each) and the gains' sort need some 10 MB:
        # with PostgreSQL's default 4 MB they spill to disk. Raised for this transaction only, and
        # never lowered below the server's own setting.
        cursor.execute(
            "SELECT set_config('work_mem', %s, true)"
            " WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(%s)",
            [_FOLD_WORK_MEM, _FOLD_WORK_MEM],
        )
        # The planner guesses a CTE's rows (6 for 11,800 here), and with so low a guess it joins
        # the old minutes by a nested loop: every old minute compared with each new one, seconds
        # for a re-poll. Without nested loops the joins are hashes, linear whatever the guess and
        # whatever the table's statistics. Off for this statement only, then as it was.
        cursor.execute("SELECT current_setting('enable_nestloop'), set_config('enable_nestloop', 'off', true)")
        (nested_loops, _off) = cursor.fetchone()
        cursor.execute(sql, params)
        result = cursor.fetchall()
        cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [nested_loops])
    return [
        FoldedClass(
            class_id=class_id,
            minutes=list(minutes),
            newest=newest,
            gains=dict(zip(REPORT_COUNTERS, counters, strict=True)),
            latency=list(latency),
            latency_sum=latency_sum,
            records_tokens_cost=cost,
        )
        for class_id, minutes, newest, *counters, latency, latency_sum, cost in result
    ]
