from django.urls import path

from dashboards import triage_views, views

app_name = "dashboards"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("classes/<slug:slug>/", views.class_detail, name="class-detail"),
    path("schedules/", views.schedule_week, name="schedules"),
    path("cost/", views.cost, name="cost"),
    path("actions/", views.action_list, name="actions"),
    path("actions/<int:action_id>/", views.action_detail, name="action-detail"),
    path("actions/<int:action_id>/progress/", views.action_progress, name="action-progress"),
    path("actions/<int:action_id>/cancel/", views.action_cancel_view, name="action-cancel"),
    path("audit/", views.audit_log, name="audit"),
    # Dead-letter triage
    path("dead-letters/", triage_views.dead_letters, name="dead-letters"),
    path("dead-letters/messages/", triage_views.dead_letter_messages, name="dead-letter-messages"),
    path("dead-letters/replay/", triage_views.replay, name="dead-letter-replay"),
    path("dead-letters/discard/", triage_views.discard, name="dead-letter-discard"),
    path("dead-letters/<int:pk>/", triage_views.dead_letter_detail, name="dead-letter-detail"),
    path("dead-letters/<int:pk>/edit-and-replay/", triage_views.edit_and_replay, name="dead-letter-edit-replay"),
    path("dead-letters/rules/", triage_views.triage_rules, name="triage-rules"),
    path("dead-letters/rules/new/", triage_views.triage_rule_new, name="triage-rule-new"),
    path("dead-letters/rules/<int:pk>/", triage_views.triage_rule_edit, name="triage-rule-edit"),
    path("dead-letters/rules/<int:pk>/toggle/", triage_views.triage_rule_toggle, name="triage-rule-toggle"),
    path("dead-letters/rules/<int:pk>/delete/", triage_views.triage_rule_delete, name="triage-rule-delete"),
]
