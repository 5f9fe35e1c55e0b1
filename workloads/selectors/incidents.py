"""Read-side queries about incident mode."""


def active_incident():
    """The incident mode in force now, or None when there is none.

    Every page shows a banner while incident mode is active (`dashboards.context_processors`
    calls this once per full page). Incident mode has no model yet, so nothing is ever active
    and this returns None. The incident-mode issue fills it in: it returns the one active row,
    which the banner reads as `started_by` (a user or a label), `reason`, `ticket` (may be
    blank), `started_at` and `expires_at`.
    """
    return None
