"""Read-side queries about incident mode and pauses."""

from workloads.models import IncidentMode, PoolHold
from workloads.models.incidents import OPEN_HOLD_STATES


def active_incident() -> IncidentMode | None:
    """The incident mode in force now, or None when there is none.

    Every page shows a banner while incident mode is active (`dashboards.context_processors`
    calls this once per full page); the banner reads `started_by_label` (kept even after the user
    is deleted), `reason`, `ticket` (may be blank), `started_at` and `expires_at`. An incident
    past its expiry stays active until the expiry tick ends it.
    """
    return IncidentMode.objects.filter(ended_at__isnull=True).select_related("started_by").first()


def incident_holds(incident: IncidentMode):
    """The pools an incident paused, with what each had and how it was restored."""
    return incident.holds.select_related("workload_class", "pause_action", "restore_action").order_by(
        "workload_class__slug"
    )


def open_holds():
    """Every pause in force or being restored, by incident mode or on its own."""
    return PoolHold.objects.filter(state__in=OPEN_HOLD_STATES).select_related("workload_class", "incident")
