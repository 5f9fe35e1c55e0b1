from django.urls import path
from rest_framework.routers import DefaultRouter

from workloads.api import (
    backfill,
    comparison,
    deadletters,
    deployments,
    environments,
    incidents,
    migration,
    notifications,
    pauses,
    scaling,
    subscriptions,
    telemetry,
    users,
    views,
)
from workloads.api.actions import ActionViewSet
from workloads.api.ingestion import EventIngestView
from workloads.api.schema import OLD_SPELLING_SUFFIX

# One convention: every API path ends with a slash, as the router's do.
router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("classes", views.WorkloadClassViewSet, basename="workload-class")
router.register("environments", environments.EnvironmentViewSet, basename="environment")
router.register("cost-rates", views.CostRatesViewSet, basename="cost-rates")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")
router.register("tokens", views.ApiTokenViewSet, basename="api-token")
router.register("users", users.UserViewSet, basename="user")
router.register("actions", ActionViewSet, basename="action")
router.register("dead-letters", deadletters.DeadLetterViewSet, basename="dead-letter")
router.register("replays", deadletters.ReplayViewSet, basename="replay")
router.register("triage-rules", deadletters.TriageRuleViewSet, basename="triage-rule")
router.register("alert-incidents", notifications.IncidentViewSet, basename="alert-incident")
router.register("silences", notifications.SilenceViewSet, basename="silence")
router.register("notification-channels", notifications.ChannelViewSet, basename="notification-channel")
router.register("notification-routes", notifications.RouteViewSet, basename="notification-route")


def with_old_spelling(route: str, view, *, name: str) -> list:
    """The path with its trailing slash, and the spelling without it that round 1 published: clients
    keep working, and the schema marks the old spelling deprecated (`schema.mark_old_spellings`).
    Django's APPEND_SLASH cannot stand in: it redirects, and a redirected POST loses its body."""
    return [path(f"{route}/", view, name=name), path(route, view, name=f"{name}{OLD_SPELLING_SUFFIX}")]


app_name = "api"
urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("classes/<slug:slug>/metrics/", telemetry.ClassMetricsView.as_view(), name="class-metrics"),
    path("classes/<slug:slug>/error-budget/", telemetry.ClassErrorBudgetView.as_view(), name="class-error-budget"),
    path("slos/", telemetry.SloListView.as_view(), name="slo-list"),
    path("alerts/", telemetry.AlertListView.as_view(), name="alert-list"),
    path("poll-runs/", telemetry.PollRunListView.as_view(), name="poll-run-list"),
    path("cost/", telemetry.CostView.as_view(), name="cost"),
    path("classes/<slug:slug>/observation/", migration.ClassObservationView.as_view(), name="class-observation"),
    path("classes/<slug:slug>/backfill/", backfill.ClassBackfillView.as_view(), name="class-backfill"),
    path(
        "classes/<slug:slug>/control-signals/",
        migration.ClassControlSignalsView.as_view(),
        name="class-control-signals",
    ),
    path(
        "classes/<slug:slug>/control-signals/<int:pk>/ack/",
        migration.ControlSignalAckView.as_view(),
        name="class-control-signal-ack",
    ),
    path("migration-plans/", migration.MigrationPlanListView.as_view(), name="migration-plans"),
    path("migration-plans/<int:pk>/", migration.MigrationPlanDetailView.as_view(), name="migration-plan"),
    path(
        "migration-plans/<int:pk>/advance/",
        migration.MigrationPlanAdvanceView.as_view(),
        name="migration-plan-advance",
    ),
    path(
        "migration-plans/<int:pk>/rollback/",
        migration.MigrationPlanRollbackView.as_view(),
        name="migration-plan-rollback",
    ),
    path(
        "migration-plans/<int:pk>/evidence/",
        migration.MigrationPlanEvidenceView.as_view(),
        name="migration-plan-evidence",
    ),
    path("migration-candidates/", migration.MigrationCandidatesView.as_view(), name="migration-candidates"),
    path("classes/<slug:slug>/deployments/", deployments.ClassDeploymentsView.as_view(), name="class-deployments"),
    *with_old_spelling("classes/<slug:slug>/events", EventIngestView.as_view(), name="class-events"),
    *with_old_spelling("incident-mode", incidents.IncidentModeView.as_view(), name="incident-mode"),
    *with_old_spelling("classes/<slug:slug>/pause", pauses.ClassPauseView.as_view(), name="class-pause"),
    *with_old_spelling("classes/<slug:slug>/scaling", scaling.ClassScalingView.as_view(), name="class-scaling"),
    *with_old_spelling(
        "classes/<slug:slug>/scaling/take-over",
        scaling.ClassScalingTakeOverView.as_view(),
        name="class-scaling-take-over",
    ),
    *with_old_spelling(
        "classes/<slug:slug>/schedule-preview",
        scaling.SchedulePreviewView.as_view(),
        name="class-schedule-preview",
    ),
    *with_old_spelling("comparisons", comparison.ComparisonView.as_view(), name="comparisons"),
    path("classes/<slug:slug>/seek/", subscriptions.SeekView.as_view(), name="class-seek"),
    path("classes/<slug:slug>/snapshots/", subscriptions.SnapshotView.as_view(), name="class-snapshots"),
    path("dead-letter-groups/", deadletters.DeadLetterGroupListView.as_view(), name="dead-letter-groups"),
    path("dead-letter-attention/", deadletters.DeadLetterAttentionView.as_view(), name="dead-letter-attention"),
    *router.urls,
]
