from django.urls import path, register_converter

from dashboards import (
    action_views,
    alert_views,
    audit_views,
    class_delete_views,
    class_edit_views,
    class_views,
    cost_views,
    deployment_views,
    incident_views,
    migration_views,
    overview_views,
    pool_views,
    preference_views,
    schedule_views,
    triage_views,
    user_views,
)


class UsernameConverter:
    """Django's username characters only: a NUL or other byte the database refuses is a 404."""

    regex = r"[\w.@+-]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(UsernameConverter, "username")

app_name = "dashboards"
urlpatterns = [
    path("", overview_views.overview, name="overview"),
    path("preferences/time-display/", preference_views.time_display, name="time-display"),
    path("classes/<slug:slug>/", class_views.class_detail, name="class-detail"),
    path("classes/<slug:slug>/delete/", class_delete_views.class_delete, name="class-delete"),
    path("classes/<slug:slug>/edit/", class_edit_views.class_edit, name="class-edit"),
    path("schedules/", schedule_views.schedule_week, name="schedules"),
    path("cost/", cost_views.cost, name="cost"),
    path("actions/", action_views.action_list, name="actions"),
    path("actions/<int:action_id>/", action_views.action_detail, name="action-detail"),
    path("actions/<int:action_id>/progress/", action_views.action_progress, name="action-progress"),
    path("actions/<int:action_id>/cancel/", action_views.action_cancel_view, name="action-cancel"),
    path("audit/", audit_views.audit_log, name="audit"),
    # People: roles, sign-in, tokens (admins)
    path("users/", user_views.users, name="users"),
    path("users/<username:username>/", user_views.user_detail, name="user-detail"),
    path("users/<username:username>/role/", user_views.user_role, name="user-role"),
    path(
        "users/<username:username>/environment-role/",
        user_views.user_environment_role,
        name="user-environment-role",
    ),
    path("users/<username:username>/active/", user_views.user_active, name="user-active"),
    path("users/<username:username>/tokens/revoke/", user_views.user_tokens_revoke, name="user-tokens-revoke"),
    path(
        "users/<username:username>/tokens/<int:token_id>/revoke/",
        user_views.user_token_revoke,
        name="user-token-revoke",
    ),
    # Incident mode and the migration comparison
    path("incidents/", incident_views.incidents, name="incidents"),
    path("incidents/enter/", incident_views.incident_enter, name="incident-enter"),
    path("incidents/extend/", incident_views.incident_extend, name="incident-extend"),
    path("incidents/exit/", incident_views.incident_exit, name="incident-exit"),
    path("compare/", incident_views.compare, name="compare"),
    # Migration plans (docs/migration.md)
    path("migrations/", migration_views.migrations, name="migrations"),
    path("classes/<slug:slug>/control-signal/", migration_views.class_control_signal, name="class-control-signal"),
    path("classes/<slug:slug>/backfill/", migration_views.class_backfill, name="class-backfill"),
    path("migrations/new/", migration_views.migration_create, name="migration-create"),
    path("migrations/<int:pk>/", migration_views.migration_detail, name="migration-detail"),
    path("migrations/<int:pk>/advance/", migration_views.migration_advance, name="migration-advance"),
    path("migrations/<int:pk>/rollback/", migration_views.migration_rollback, name="migration-rollback"),
    # A class's pool and subscription
    path("classes/<slug:slug>/pool/", pool_views.class_pool, name="class-pool"),
    path(
        "classes/<slug:slug>/deployments/",
        deployment_views.class_deployment_record,
        name="class-deployment-record",
    ),
    path("classes/<slug:slug>/pause/", pool_views.class_pause, name="class-pause"),
    path("classes/<slug:slug>/override/", pool_views.class_override, name="class-override"),
    path("classes/<slug:slug>/resume/", pool_views.class_resume, name="class-resume"),
    path("classes/<slug:slug>/pause/extend/", pool_views.class_pause_extend, name="class-pause-extend"),
    path("classes/<slug:slug>/scaling/take-over/", pool_views.class_take_over, name="class-take-over"),
    path("classes/<slug:slug>/scaling/controller/", pool_views.class_controller, name="class-controller"),
    path("classes/<slug:slug>/seek/", pool_views.class_seek, name="class-seek"),
    path("classes/<slug:slug>/snapshot/", pool_views.class_snapshot, name="class-snapshot"),
    # Dead-letter triage
    path("dead-letters/", triage_views.dead_letters, name="dead-letters"),
    path("dead-letters/messages/", triage_views.dead_letter_messages, name="dead-letter-messages"),
    path("dead-letters/replay/", triage_views.replay, name="dead-letter-replay"),
    path("dead-letters/discard/", triage_views.discard, name="dead-letter-discard"),
    path("dead-letters/<int:pk>/", triage_views.dead_letter_detail, name="dead-letter-detail"),
    path("dead-letters/<int:pk>/edit-and-replay/", triage_views.edit_and_replay, name="dead-letter-edit-replay"),
    path("dead-letters/rules/", triage_views.triage_rules, name="triage-rules"),
    path("dead-letters/rules/new/", triage_views.triage_rule_new, name="triage-rule-new"),
    path("dead-letters/rules/preview/", triage_views.triage_rule_preview, name="triage-rule-preview"),
    path("dead-letters/rules/<int:pk>/", triage_views.triage_rule_edit, name="triage-rule-edit"),
    path("dead-letters/rules/<int:pk>/toggle/", triage_views.triage_rule_toggle, name="triage-rule-toggle"),
    path("dead-letters/rules/<int:pk>/delete/", triage_views.triage_rule_delete, name="triage-rule-delete"),
    # Alerts: incidents per SLO, silences, notification channels and routes, the demo receiver
    path("alerts/", alert_views.incidents, name="alert-incidents"),
    path("alerts/<int:pk>/acknowledge/", alert_views.incident_acknowledge, name="alert-incident-acknowledge"),
    path("alerts/silences/", alert_views.silences, name="alert-silences"),
    path("alerts/silences/<int:pk>/end/", alert_views.silence_end, name="alert-silence-end"),
    path("alerts/channels/", alert_views.channels, name="alert-channels"),
    path("alerts/channels/<int:pk>/test/", alert_views.channel_test, name="alert-channel-test"),
    path("alerts/routes/", alert_views.routes, name="alert-routes"),
    path("alerts/demo-receiver/", alert_views.demo_receiver, name="alert-demo-receiver"),
]
