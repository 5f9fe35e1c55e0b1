"""Worker health of a pool, as a pure function of what the controller sees (no Django, no providers).

A pool is **unhealthy** when its instances do no work while a backlog waits: no worker reports
(completions or failures) arrive although instances run and messages are waiting. Workers write a
report every WORKER_REPORT_INTERVAL_SECONDS while they settle anything, so a pool that works is
never silent for long. The cause comes from the evidence:

- **no handler**: the workers exit at start with NO_HANDLER_EXIT_CODE (seen where exits are seen:
  the local fleet);
- **crash-looping**: workers exit again and again, each soon after it started;
- **stuck**: the workers run (no exits) but settle nothing, longer than a job may take;
- **no reports**: where exits cannot be seen (Cloud Run), instances run but no reports arrive.

Silence is measured from the later of the last report and the moment the pool got both instances
and a backlog (a pool that just got work has had no chance to report). Exits are evidence enough
after one report interval of silence; without exits, the silence must outlast the longest retry
backoff plus a job's timeout too, so a pool busy with long jobs, or idle in front of messages that
back off before their next attempt, is not called stuck. Reports reach the controller through the
metrics poll, so both waits include the poll's lag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# `manage.py runworker` exits with this (sysexits' EX_CONFIG) when no handler is registered for its
# class, so whoever watches the process (the local fleet) can tell a missing handler from a crash.
NO_HANDLER_EXIT_CODE = 78

# How recent the last exit must be to count as a crash loop still going on.
RECENT_EXIT = timedelta(seconds=60)

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class HealthInputs:
    now: datetime
    instances: int  # the pool's instance count
    backlog: float | None  # None: no fresh telemetry
    last_report_at: datetime | None  # the newest worker report (completions or failures) seen
    busy_since: datetime | None  # since when instances > 0 and backlog > 0 without a break
    report_interval: timedelta
    job_timeout: timedelta
    poll_lag: timedelta  # how late a report can reach the controller through the metrics poll
    # The longest retry backoff: a backlog of messages backing off (poison being retried) is
    # redelivered within it, so idle workers in front of it are waiting, not stuck.
    max_backoff: timedelta = timedelta(0)
    exits_observed: bool = False  # whether the provider sees worker exits at all
    exits_in_row: int = 0
    last_exit_at: datetime | None = None
    last_exit_code: int | None = None


@dataclass(frozen=True)
class Health:
    state: str  # HEALTHY, UNHEALTHY or UNKNOWN
    cause: str = ""  # for UNHEALTHY: "crash_looping", "no_handler", "stuck" or "no_reports"
    detail: str = ""  # the evidence, for people


def _ago(now: datetime, moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def _instances(count: int) -> str:
    return f"{count} instance{'s' if count != 1 else ''}"


def pool_health(inputs: HealthInputs) -> Health:
    now = inputs.now
    if inputs.backlog is None:
        return Health(UNKNOWN, detail="no fresh backlog data")
    if inputs.instances == 0:
        return Health(HEALTHY, detail="no instances running")
    if inputs.backlog <= 0:
        return Health(HEALTHY, detail="no backlog waiting")
    silent_from = max(
        (moment for moment in (inputs.last_report_at, inputs.busy_since) if moment is not None), default=now
    )
    silence = now - silent_from
    last_report = f"last worker report {_ago(now, inputs.last_report_at)}"
    evidence = f"{_instances(inputs.instances)}, backlog {inputs.backlog:.0f}, {last_report}"

    # Exits after the last report, the latest still recent: runfleet restarts a crashed worker
    # within 30 s, so a loop that goes on shows an exit at least about once a minute.
    crash_loop = (
        inputs.exits_observed
        and inputs.exits_in_row >= 2
        and inputs.last_exit_at is not None
        and (inputs.last_report_at is None or inputs.last_exit_at > inputs.last_report_at)
        and now - inputs.last_exit_at <= max(2 * inputs.report_interval, RECENT_EXIT)
    )
    if crash_loop and silence >= inputs.report_interval + inputs.poll_lag:
        exits = f"{inputs.exits_in_row} worker exits in a row, the last {_ago(now, inputs.last_exit_at)}"
        if inputs.last_exit_code == NO_HANDLER_EXIT_CODE:
            why = f"no handler registered: {exits} (exit code {NO_HANDLER_EXIT_CODE})"
            return Health(UNHEALTHY, "no_handler", f"{why}; {evidence}")
        return Health(
            UNHEALTHY, "crash_looping", f"crash-looping: {exits} (exit code {inputs.last_exit_code}); {evidence}"
        )

    stuck_after = (
        max(2 * inputs.report_interval, inputs.max_backoff + inputs.job_timeout + inputs.report_interval)
        + inputs.poll_lag
    )
    if silence >= stuck_after:
        if inputs.exits_observed:
            why = f"stuck: workers run but settled nothing for {_seconds(silence)}"
            return Health(UNHEALTHY, "stuck", f"{why}; {evidence}")
        return Health(
            UNHEALTHY,
            "no_reports",
            f"no worker reports for {_seconds(silence)} (crash-looping, stuck or no handler); {evidence}",
        )
    return Health(HEALTHY, detail=last_report)


def _seconds(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
